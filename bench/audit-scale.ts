/**
 * The audit trail at scale (docs/reliability.md, "At scale"): `audit verify` and `audit list`
 * wall time and peak RSS, and the time one archive run spends opening the trail, on a `local:`
 * store holding N records. A script, not a test.
 *
 *   node dist/bench/audit-scale.js seed --dir D [--records 100000]
 *     writes N records straight into D/_auditlog/audit/ (no fsync per record) with valid chaining,
 *     as a daemon archiving ten tables hourly writes them (12 a run, ~105,000 a year), from
 *     2024-01-01; and D/config.yaml with `local: { path: D }`.
 *   node dist/bench/audit-scale.js measure --dir D [--bin bin/auditlog] [--module dist/src/compliance/audit-trail.js]
 *     runs `audit verify` and `audit list` (output to /dev/null) under /usr/bin/time with the
 *     bin's own node flags, and times StorageAuditTrail.open() from module M (default: this
 *     build's) with the clock on the newest record's day and on the day after (a day's first run).
 *     Prints one JSON line. --open-only skips the two commands.
 *   node --expose-gc dist/bench/audit-scale.js verifier-heap [--records 316800]
 *     feeds N such records, built in memory, to AuditChainVerifier and prints the heap it holds
 *     after a forced collection: verify's own state, apart from I/O and the process.
 */
import { spawn } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { auditRecordKey, buildAuditRecord, serializeAuditRecord, sha256Hex, type AuditEntry } from '../src/compliance/audit-record.js';
import type { StorageAuditTrail } from '../src/compliance/audit-trail.js';
import { AuditChainVerifier } from '../src/compliance/verify-audit-chain.js';
import { LocalObjectStore } from '../src/storage/local-object-store.js';

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: { dir: { type: 'string' }, records: { type: 'string' }, bin: { type: 'string' }, module: { type: 'string' }, 'open-only': { type: 'boolean' } },
});
const dir = path.resolve(values.dir ?? '/tmp/auditlog-audit-scale');
const TABLES = Array.from({ length: 10 }, (_, i) => `events_${i}`);
const FROM = Date.parse('2024-01-01T00:00:00.000Z');

function runEntries(runId: string): AuditEntry[] {
  const id = (table: string): { database: string; schema: string; table: string } => ({ database: 'app', schema: 'public', table });
  return [
    { event: 'ARCHIVE_START', runId, status: 'started', details: { tables: TABLES.map(id) } },
    ...TABLES.map((t): AuditEntry => ({ event: 'ARCHIVE_SUCCESS', runId, ...id(t), records: 10_000, bytes: 1_500_000, durationMs: 2_000, objectKeys: [`app/public.${t}/x.jsonl.gz`], status: 'archived' })),
    { event: 'ARCHIVE_SUCCESS', runId, status: 'ok', durationMs: 25_000 },
  ];
}

async function seed(records: number): Promise<void> {
  let prev: string | null = null;
  const made = new Set<string>();
  let written = 0;
  for (let run = 0; written < records; run++) {
    const entries = runEntries(`run-${String(run).padStart(6, '0')}`);
    for (const [i, entry] of entries.entries()) {
      if (written >= records) break;
      const record = buildAuditRecord(entry, new Date(FROM + run * 3_600_000 + i * 2_000), 'bench', prev);
      const key = auditRecordKey(record, i + 1);
      const body = serializeAuditRecord(record);
      const file = path.join(dir, ...key.split('/'));
      const parent = path.dirname(file);
      if (!made.has(parent)) await mkdir(parent, { recursive: true });
      made.add(parent);
      await writeFile(file, body);
      prev = sha256Hex(body);
      written++;
    }
  }
  await writeFile(path.join(dir, 'config.yaml'), `local:\n  path: ${dir}\ndatabases:\n  - name: app\n    url: postgres://postgres@127.0.0.1:5432/postgres\n    tables:\n      - name: events_0\n        timestamp_column: created_at\n`);
  console.log(JSON.stringify({ seeded: written, dir }));
}

/** Wall seconds and peak RSS (MB) of one CLI command, with its exit code. */
function timeCli(bin: string, args: string[]): Promise<{ seconds: number; peakRssMb: number; code: number }> {
  return new Promise((resolve, reject) => {
    // %x: the command's exit code; %M: its peak RSS in KB.
    const child = spawn('/usr/bin/time', ['-f', '%e %M %x', bin, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', () => {
      const last = err.trim().split('\n').at(-1) ?? '';
      const [seconds, kb, code] = last.split(' ').map(Number);
      if (seconds === undefined || kb === undefined || code === undefined || Number.isNaN(kb)) return reject(new Error(`could not read /usr/bin/time output: ${err.slice(-500)}`));
      resolve({ seconds, peakRssMb: Math.round(kb / 1024), code });
    });
  });
}

async function timeOpen(modulePath: string, now: Date): Promise<number> {
  const { StorageAuditTrail: Trail } = (await import(pathToFileURL(path.resolve(modulePath)).href)) as { StorageAuditTrail: typeof StorageAuditTrail };
  const trail = new Trail(new LocalObjectStore({ path: dir }), 'bench', () => now);
  const started = performance.now();
  await trail.open();
  return Math.round(performance.now() - started);
}

async function measure(): Promise<void> {
  const bin = values.bin ?? 'bin/auditlog';
  const config = path.join(dir, 'config.yaml');
  const skip = values['open-only'] === true;
  const verify = skip ? undefined : await timeCli(bin, ['audit', 'verify', '-c', config]);
  const list = skip ? undefined : await timeCli(bin, ['audit', 'list', '-c', config]);
  // The newest record's day, as the seed wrote it: the clock of the next hourly run, and of the first run of the day after.
  let newest = '';
  for await (const info of new LocalObjectStore({ path: dir }).list('_auditlog/audit/', { startAfter: '_auditlog/audit/2023' })) newest = info.key;
  const day = /\/(\d{4})\/(\d{2})\/(\d{2})\//.exec(newest)!;
  const sameDay = new Date(`${day[1]}-${day[2]}-${day[3]}T23:59:00.000Z`);
  const modulePath = values.module ?? path.join(path.dirname(new URL(import.meta.url).pathname), '../src/compliance/audit-trail.js');
  const openSameDayMs = await timeOpen(modulePath, sameDay);
  const openNextDayMs = await timeOpen(modulePath, new Date(sameDay.getTime() + 60_000));
  console.log(JSON.stringify({ dir, bin, verify, list, openSameDayMs, openNextDayMs }));
}

async function verifierHeap(records: number): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) throw new Error('run with node --expose-gc');
  gc();
  const before = process.memoryUsage().heapUsed;
  const verifier = new AuditChainVerifier();
  let prev: string | null = null;
  for (let i = 0; i < records; i++) {
    const run = Math.floor(i / 12);
    const entry = runEntries(`run-${String(run).padStart(6, '0')}`)[i % 12]!;
    const record = buildAuditRecord(entry, new Date(FROM + run * 3_600_000 + (i % 12) * 2_000), 'bench', prev);
    const body = serializeAuditRecord(record);
    verifier.add({ key: auditRecordKey(record, (i % 12) + 1), body });
    prev = sha256Hex(body);
  }
  gc();
  const held = process.memoryUsage().heapUsed - before;
  console.log(JSON.stringify({ records, heapMb: Math.round(held / 1_048_576), bytesPerRecord: Math.round(held / records), problems: verifier.report().problems.length }));
}

if (positionals[0] === 'seed') await seed(Number(values.records ?? '100000'));
else if (positionals[0] === 'measure') await measure();
else if (positionals[0] === 'verifier-heap') await verifierHeap(Number(values.records ?? '316800'));
else {
  console.error('usage: audit-scale.js seed|measure|verifier-heap [--dir D] [--records N] [--bin B] [--module M] [--open-only]');
  process.exitCode = 2;
}
