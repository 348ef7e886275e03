/**
 * `auditlog wizard`: flags → WizardFlags, a database connection and a prompter for runWizard, then
 * the file written (0600: it may hold a typed URL) or the YAML on stdout.
 */
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { access, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Env } from '../config/expand-env.js';
import { collectSecrets } from '../config/mask-secrets.js';
import { defaultsSchema, MAX_RETENTION_DAYS } from '../config/schema.js';
import { AuditlogError, describeError } from '../core/errors.js';
import { outputFileError, requireWritableOutput } from './output-file.js';
import { buildSessionSettings, checkConnection, createPool } from '../db/connect.js';
import { createObjectStore } from '../storage/create-object-store.js';
import { validateWizardConfig } from '../wizard/build-config.js';
import { runWizard, type Prompter, type WizardFlags } from '../wizard/run-wizard.js';

export interface WizardCliOptions extends Omit<WizardFlags, 'retentionDays' | 'minRetentionDays' | 'maxRetentionDays'> {
  retentionDays?: string;
  minRetentionDays?: string;
  maxRetentionDays?: string;
  output?: string;
  yes?: boolean;
  force?: boolean;
  checkConnections?: boolean;
}

export interface WizardIo {
  env: Env;
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  /** Null when stdin is not a terminal: then every answer must come from flags, with --yes. */
  createPrompter: (() => Promise<Prompter>) | null;
  onSecrets: (secrets: string[]) => void;
}

export async function runWizardCommand(opts: WizardCliOptions, io: WizardIo): Promise<number> {
  try {
    return await askAndWrite(opts, io);
  } catch (error) {
    // Ctrl+C or Ctrl+D at a prompt: @inquirer/prompts rejects with ExitPromptError. Nothing was written.
    if (error instanceof Error && error.name === 'ExitPromptError') {
      io.stderr('\nwizard cancelled; nothing written\n');
      return 2;
    }
    throw error;
  }
}

async function askAndWrite(opts: WizardCliOptions, io: WizardIo): Promise<number> {
  const retentionDays = opts.retentionDays === undefined ? undefined : parseRetention(opts.retentionDays, '--retention-days');
  const minRetentionDays = opts.minRetentionDays === undefined ? undefined : parseRetention(opts.minRetentionDays, '--min-retention-days');
  const maxRetentionDays = opts.maxRetentionDays === undefined ? undefined : parseRetention(opts.maxRetentionDays, '--max-retention-days');
  if (minRetentionDays !== undefined && maxRetentionDays !== undefined && minRetentionDays > maxRetentionDays) {
    throw new AuditlogError('USAGE', `--min-retention-days ${minRetentionDays} is more than --max-retention-days ${maxRetentionDays}: swap them`);
  }
  // A local: config has no place for them: they were dropped without a word (found by probing).
  const s3Flags = S3_FLAGS.filter(([key]) => opts[key] !== undefined).map(([, flag]) => flag);
  if (opts.localPath !== undefined && s3Flags.length > 0) {
    throw new AuditlogError('USAGE', `--local-path cannot be combined with ${s3Flags.join(', ')} (S3 settings): pass --local-path alone to archive to a directory, or leave it out to archive to S3`);
  }
  // The key id is only written with SSE-KMS: without --sse aws:kms it would be dropped without a word.
  if (opts.sseKmsKeyId !== undefined && opts.sse !== 'aws:kms') {
    const got = opts.sse === undefined ? 'without --sse' : `with --sse ${opts.sse}`;
    throw new AuditlogError('USAGE', `--sse-kms-key-id only applies with --sse aws:kms, got it ${got}: add --sse aws:kms (S3), or leave out --sse-kms-key-id`);
  }
  if (opts.yes !== true && io.createPrompter === null) {
    throw new AuditlogError('USAGE', 'stdin is not a terminal: pass every answer as a flag (--database-url, --tables, --bucket or --local-path, ...) with --yes');
  }
  const prompter = opts.yes === true || io.createPrompter === null ? null : await io.createPrompter();
  const outputName = opts.output ?? '-';
  if (opts.output !== undefined && opts.force !== true && (await exists(opts.output))) {
    if (prompter === null || !(await prompter.confirm({ message: `${opts.output} exists. Overwrite it?`, default: false }))) {
      throw new AuditlogError('USAGE', `${opts.output} already exists: choose another --output, or pass --force to overwrite it`);
    }
  }
  if (opts.output !== undefined) await requireWritableOutput({ path: opts.output, what: 'the configuration', replacedByRename: true });
  const { retentionDays: _ignored, minRetentionDays: _min, maxRetentionDays: _max, output: _output, yes: _yes, force: _force, checkConnections: _check, ...rest } = opts;
  const flags: WizardFlags = {
    ...rest,
    ...(retentionDays === undefined ? {} : { retentionDays }),
    ...(minRetentionDays === undefined ? {} : { minRetentionDays }),
    ...(maxRetentionDays === undefined ? {} : { maxRetentionDays }),
  };
  const defaults = defaultsSchema.parse({});
  const result = await runWizard({
    flags,
    env: io.env,
    prompter,
    report: (line) => io.stderr(`${line}\n`),
    now: new Date(),
    outputName,
    connect: async (database) => {
      io.onSecrets(collectSecrets({ databases: [database] }));
      const pool = createPool({ database, applicationName: 'auditlog-wizard', settings: buildSessionSettings(defaults), onBackgroundError: () => undefined });
      await checkConnection(pool, database, collectSecrets({ databases: [database] })).catch(async (error: unknown) => {
        await pool.end().catch(() => undefined);
        throw error;
      });
      return { q: pool, close: () => pool.end() };
    },
  });
  if (opts.checkConnections === true) {
    const config = validateWizardConfig(result.yaml, io.env);
    try {
      const store = await createObjectStore(config);
      await store.check();
      io.stderr(`ok: storage ${store.description}\n`);
    } catch (error) {
      io.stderr(`error: ${describeError(error)}\n`);
      io.stderr('the configuration was not written: fix the storage settings (or leave out --check-connections) and run the wizard again\n');
      return 1;
    }
  }
  if (prompter !== null && !(await prompter.confirm({ message: opts.output === undefined ? 'Print the configuration?' : `Write the configuration to ${opts.output}?`, default: true }))) {
    io.stderr('nothing written\n');
    return 0;
  }
  if (opts.output === undefined) {
    io.stdout(result.yaml);
  } else {
    const output = opts.output;
    await writePrivateFile(output, result.yaml).catch((error: unknown) => Promise.reject(outputFileError({ path: output, what: 'the configuration' }, describeError(error), error)));
    io.stderr(`wrote ${opts.output}; next: auditlog config validate -c ${opts.output} --check-connections, then auditlog archive -c ${opts.output} --dry-run\n`);
  }
  return 0;
}

/** The flags that set the `s3:` section, in the order --help lists them. */
const S3_FLAGS: readonly [keyof WizardCliOptions, string][] = [
  ['bucket', '--bucket'],
  ['prefix', '--prefix'],
  ['region', '--region'],
  ['endpoint', '--endpoint'],
  ['forcePathStyle', '--force-path-style'],
  ['sse', '--sse'],
  ['sseKmsKeyId', '--sse-kms-key-id'],
  ['storageClass', '--storage-class'],
];

function parseRetention(text: string, flag: string): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 1 || n > MAX_RETENTION_DAYS) {
    throw new AuditlogError('USAGE', `${flag} expects a whole number of days from 1 to ${MAX_RETENTION_DAYS}, got "${text}"`);
  }
  return n;
}

/**
 * `text` into `file` with mode 0600, whether or not `file` existed: `writeFile`'s `mode` only applies
 * when it creates the file, so `--force` over a 0644 file would keep 0644 with a password inside.
 * A new 0600 file in the same directory is renamed over `file` (atomic: readers see the old file or
 * the new one, never a half-written or world-readable one).
 */
async function writePrivateFile(file: string, text: string): Promise<void> {
  const temp = join(dirname(file), `.${basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    await writeFile(temp, text, { mode: 0o600, flag: 'wx' });
    await rename(temp, file);
  } catch (error) {
    await rm(temp, { force: true }).catch(() => undefined);
    throw error;
  }
}

async function exists(file: string): Promise<boolean> {
  try {
    await access(file, constants.F_OK);
    return true;
  } catch {
    return false;
  }
}
