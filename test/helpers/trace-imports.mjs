/**
 * Records every module URL the ESM loader resolves, one per line, in the file named by
 * AUDITLOG_TRACE_IMPORTS. Run a process under it with NODE_OPTIONS=--import=<this file>: the
 * start-up test (test/cli/startup-imports.test.ts) reads the file to see which dependencies a
 * command loaded. The hooks run on the loader's own thread; a synchronous append per resolution
 * leaves nothing to flush at exit, however the process ends. A package's first `import` from ESM
 * always passes here (what CommonJS packages require() internally does not, which is enough:
 * reaching a package at all is what the test asks about).
 */
import { appendFileSync } from 'node:fs';
import { register } from 'node:module';
import { isMainThread } from 'node:worker_threads';

// This file is both the --import preload (main thread) and the hooks module (loader thread).
if (isMainThread) register(import.meta.url);

export async function resolve(specifier, context, nextResolve) {
  const resolved = await nextResolve(specifier, context);
  const file = process.env.AUDITLOG_TRACE_IMPORTS;
  if (file) appendFileSync(file, resolved.url + '\n');
  return resolved;
}
