/**
 * Peak memory of restore's superseded check (src/restore/superseded-lines.ts) on synthetic
 * sidecars: no database, no data objects, only what that check reads. A script, not a test.
 *
 *   node dist/bench/superseded-memory.js seed --dir D [--keys 3000000] [--objects 365] [--again 0.01]
 *     writes --objects sidecars of uuid keys, one archiving run each (daily runs: every object of a
 *     uuid-keyed table "may share keys"), a fraction --again of them archived again by a later run;
 *     and D/candidates.json, the summaries a restore's selection would hold.
 *   node --max-old-space-size=1024 dist/bench/superseded-memory.js measure --dir D [--module M]
 *     runs loadSupersededLines from module M (default: this build's) over every object, sampling
 *     heap and ArrayBuffer memory every 5 ms; prints peak RSS and those peaks as one JSON line.
 *     Run each measurement in a fresh process with bin/auditlog's node flags.
 */
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { metadataKeyFor } from '../src/core/archive-layout.js';
import { sha256Hex } from '../src/core/batch-metadata.js';
import type { Candidate } from '../src/restore/restore-options.js';
import { LocalObjectStore } from '../src/storage/local-object-store.js';

const id = { database: 'bench', schema: 'public', table: 'events' };
const columns = [
  { name: 'id', type: 'uuid' },
  { name: 'created_at', type: 'timestamp with time zone' },
];

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: { dir: { type: 'string' }, keys: { type: 'string' }, objects: { type: 'string' }, again: { type: 'string' }, module: { type: 'string' } },
});
const dir = values.dir ?? '';
if (dir === '') throw new Error('--dir is required');
const store = new LocalObjectStore({ path: dir });

if (positionals[0] === 'seed') await seed();
else if (positionals[0] === 'measure') await measure();
else throw new Error('usage: superseded-memory seed|measure --dir D');

async function seed(): Promise<void> {
  const keys = Number(values.keys ?? 3_000_000);
  const objects = Number(values.objects ?? 365);
  const again = Number(values.again ?? 0.01);
  const perObject = Math.ceil(keys / objects);
  const earlier: string[] = [];
  const candidates: Candidate[] = [];
  for (let i = 0; i < objects; i++) {
    const day = new Date(Date.UTC(2025, 0, 1) + i * 86_400_000).toISOString().slice(0, 10);
    const run = `${day}T01:00:00.000Z-bench`;
    const own: string[] = [];
    for (let r = 0; r < perObject; r++) {
      // A share of each later object is keys an earlier run archived already (restored, archived again).
      const k = earlier.length > 0 && Math.random() < again ? earlier[Math.floor(Math.random() * earlier.length)]! : randomUUID();
      own.push(k);
    }
    const unique = [...new Set(own)];
    for (const k of unique) if (earlier.length < 200_000) earlier.push(k);
    const meta = {
      format: 'auditlog-archive',
      format_version: 1,
      tool: { name: 'auditlog-manager', version: 'bench' },
      ...id,
      columns,
      primary_key_columns: ['id'],
      timestamp_column: 'created_at',
      record_count: unique.length,
      min_primary_key: [unique.reduce((a, b) => (a < b ? a : b))],
      max_primary_key: [unique.reduce((a, b) => (a > b ? a : b))],
      sha256_compressed: 'bench',
      sha256_uncompressed: 'bench',
      run_id: run,
      primary_keys: unique.map((k) => [k]),
      xmins: unique.map((_, n) => String(1000 + n)),
      json_null_values: [],
      json_text_values: [],
    };
    const key = `bench/day=${day}/batch-${i}.jsonl.gz`;
    const body = Buffer.from(JSON.stringify(meta));
    await store.put(metadataKeyFor(key), body);
    const { primary_key_columns, min_primary_key, max_primary_key, record_count, sha256_compressed } = meta;
    candidates.push({ key, meta: { run_id: run, sha256_compressed, record_count, columns, primary_key_columns, min_primary_key, max_primary_key, sidecar_sha256: sha256Hex(body), created_at: '2026-01-01T00:00:00.000Z' } });
  }
  await store.put('candidates.json', Buffer.from(JSON.stringify(candidates)));
  console.log(JSON.stringify({ objects, keys: candidates.reduce((n, c) => n + c.meta.record_count, 0) }));
}

async function measure(): Promise<void> {
  const candidates = JSON.parse(await readFile(`${dir}/candidates.json`, 'utf8')) as Candidate[];
  const module = (await import(values.module ?? '../src/restore/superseded-lines.js')) as typeof import('../src/restore/superseded-lines.js');
  const start = process.memoryUsage();
  const peak = { heapUsed: 0, arrayBuffers: 0 };
  const sample = (): void => {
    const m = process.memoryUsage();
    peak.heapUsed = Math.max(peak.heapUsed, m.heapUsed);
    peak.arrayBuffers = Math.max(peak.arrayBuffers, m.arrayBuffers);
  };
  const timer = setInterval(sample, 5);
  const started = Date.now();
  const result = await module.loadSupersededLines(store, candidates, new Set(candidates.map((c) => c.key)), id);
  sample();
  clearInterval(timer);
  const mb = (bytes: number): number => Math.round(bytes / 1024 / 1024);
  let lines = 0;
  for (const s of result.values()) lines += s.size;
  console.log(
    JSON.stringify({
      module: values.module ?? 'this build',
      keys: candidates.reduce((n, c) => n + c.meta.record_count, 0),
      objects: candidates.length,
      superseded_lines: lines,
      seconds: (Date.now() - started) / 1000,
      peak_rss_mb: mb(process.resourceUsage().maxRSS * 1024),
      peak_heap_used_mb: mb(peak.heapUsed),
      peak_array_buffers_mb: mb(peak.arrayBuffers),
      start_rss_mb: mb(start.rss),
    }),
  );
}
