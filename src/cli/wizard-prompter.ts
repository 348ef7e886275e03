/**
 * The wizard's questions asked in a terminal with @inquirer/prompts. Loaded only for an
 * interactive wizard, so no other command pays for it. Prompts draw on stderr: stdout stays free
 * for the YAML when there is no --output.
 */
import type { Prompter } from '../wizard/run-wizard.js';

export async function createInquirerPrompter(streams: { input: NodeJS.ReadableStream; output: NodeJS.WritableStream }): Promise<Prompter> {
  const prompts = await import('@inquirer/prompts');
  const context = { input: streams.input, output: streams.output };
  return {
    input: (q) => prompts.input({ message: q.message, ...(q.default === undefined ? {} : { default: q.default }), ...(q.validate === undefined ? {} : { validate: q.validate }) }, context),
    select: (q) => prompts.select({ message: q.message, choices: q.choices, ...(q.default === undefined ? {} : { default: q.default }) }, context),
    checkbox: (q) => prompts.checkbox({ message: q.message, choices: q.choices }, context),
    confirm: (q) => prompts.confirm({ message: q.message, default: q.default }, context),
  };
}
