/**
 * `audit verify` and `audit list` over a trail of thousands of records, with broken links, forks,
 * an unreadable record, and interrupted and open runs planted at various positions: the reports
 * are the ones the whole-trail-in-memory implementation gave (the file snapshots were written by
 * it, commit a6efdd1), and no more than a bounded number of bodies is ever held at once.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import v8 from 'node:v8';
import vm from 'node:vm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runAuditListCommand, runAuditVerifyCommand } from '../../src/cli/audit-commands.js';
import { auditSources } from '../../src/cli/compliance-setup.js';
import type { Config } from '../../src/config/schema.js';
import { AuditChainVerifier } from '../../src/compliance/verify-audit-chain.js';
import { LocalObjectStore } from '../../src/storage/local-object-store.js';
import { S3ObjectStore } from '../../src/storage/s3-object-store.js';
import type { ListOptions, ObjectInfo, ObjectStore } from '../../src/storage/object-store.js';
import { removeRecord, replaceBody, writeAuditTrail, type PlannedRecord, type WrittenRecord } from '../helpers/audit-trail-fixture.js';
import { startS3Server, type S3TestServer } from '../helpers/s3-server.js';

const table = (name: string): { database: string; schema: string; table: string } => ({ database: 'app', schema: 'public', table: name });
const TABLES = ['events', 'orders', 'users'];

function start(runId: string, tables: string[]): PlannedRecord {
  return { entry: { event: 'ARCHIVE_START', runId, status: 'started', details: { tables: tables.map(table) } } };
}

function run(runId: string, tables = TABLES, extra: PlannedRecord[] = []): PlannedRecord[] {
  return [
    start(runId, tables),
    ...extra,
    ...tables.map((t): PlannedRecord => ({ entry: { event: 'ARCHIVE_SUCCESS', runId, ...table(t), records: 100, bytes: 2048, status: 'archived' } })),
    { entry: { event: 'ARCHIVE_SUCCESS', runId, status: 'ok' } },
  ];
}

/** ~4,000 records: 5 a run, with the planted runs and forks noted beside them. */
function plan(): PlannedRecord[] {
  const out: PlannedRecord[] = [];
  for (let r = 0; r < 800; r++) {
    const id = `run-${r}`;
    if (r === 0) {
      // Two runs starting on an empty trail at once: a fork at the root.
      const [first, ...rest] = run(id);
      out.push(first!, { entry: { event: 'ARCHIVE_START', runId: 'run-0b', status: 'started', details: { tables: [] } }, linkBack: 0 }, ...rest, { entry: { event: 'ARCHIVE_SUCCESS', runId: 'run-0b', status: 'ok' } });
    } else if (r === 80) out.push(start(id, ['events'])); // killed; run-81 archives events: unfinished
    else if (r === 240) out.push(start(id, ['orders'])); // killed; run-241 reconciles it: unfinished
    else if (r === 241) out.push(...run(id, TABLES, [{ entry: { event: 'ARCHIVE_RECONCILED', runId: id, ...table('orders'), records: 8, objectKeys: ['x'], status: 'committed', details: { batch_run_id: 'run-240' } } }]));
    else if (r === 320) {
      // Two runs appending at once: the second record links to the same predecessor as the first.
      const [first, second, ...rest] = run(id);
      out.push(first!, { ...second!, linkBack: 2 }, ...rest);
    } else if (r === 400) out.push(start(id, ['ledger'])); // killed; no later run of ledger: open
    else if (r === 480) out.push({ entry: { event: 'RESTORE_START', runId: 'restore-480', ...table('events'), status: 'started' } }, ...run(id)); // restores stay open
    else if (r === 600) out.push(...run(id, ['other']));
    else out.push(...run(id));
  }
  out.push(start('run-final', ['events'])); // still running
  return out;
}

let root: string;
let store: LocalObjectStore;
let trail: WrittenRecord[];

beforeAll(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'auditlog-verify-scale-'));
  store = new LocalObjectStore({ path: root });
  trail = await writeAuditTrail(root, plan());
  // An edited record, a removed one, and one replaced by something that is not JSON.
  await replaceBody(root, trail[2800]!.key, trail[2800]!.body.toString('utf8').replace('"operator":"scale-test"', '"operator":"someone"'));
  await removeRecord(root, trail[3200]!.key);
  await replaceBody(root, trail[3600]!.key, 'not json');
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const config = { compliance: { audit: { backend: 'storage' } } } as unknown as Config;

async function captured(command: (stdout: (text: string) => void) => Promise<number>): Promise<{ code: number; out: string }> {
  let out = '';
  const code = await command((text) => void (out += text));
  // The store's description is a temp directory: named the same in every run.
  return { code, out: out.split(store.description).join('<root>/') };
}

const verify = (s: ObjectStore, options: { json?: boolean; since?: string; table?: string } = {}): Promise<{ code: number; out: string }> =>
  captured((stdout) => runAuditVerifyCommand({ sources: auditSources(config, s, []), json: options.json === true, stdout, ...(options.since === undefined ? {} : { since: options.since }), ...(options.table === undefined ? {} : { table: options.table }) }));

const list = (s: ObjectStore, options: { json?: boolean; since?: string; table?: string } = {}): Promise<{ code: number; out: string }> =>
  captured((stdout) => runAuditListCommand({ sources: auditSources(config, s, []), json: options.json === true, stdout, ...(options.since === undefined ? {} : { since: options.since }), ...(options.table === undefined ? {} : { table: options.table }) }));

const keyOf = (runId: string, event: string): string => trail.find((w) => w.key.includes(`-${runId}-`) && w.key.endsWith(`-${event}.json`))!.key;

describe('audit verify and list over a trail of thousands of records', () => {
  it('finds every planted problem, fork and open run, at its record', async () => {
    const { code, out } = await verify(store, { json: true });
    expect(code).toBe(1);
    const report = (JSON.parse(out) as { trails: { records: number; problems: { key: string; kind: string }[]; forks: { key: string; sharesPredecessorWith: string }[]; open: { key: string }[] }[] }).trails[0]!;
    expect(report.records).toBe(trail.length - 1);
    expect(report.problems.map((p) => [p.key, p.kind])).toEqual([
      [trail[2801]!.key, 'broken-link'],
      [trail[3201]!.key, 'broken-link'],
      [trail[3600]!.key, 'unreadable'],
      [trail[3601]!.key, 'broken-link'],
      [keyOf('run-80', 'ARCHIVE_START'), 'unfinished-run'],
      [keyOf('run-240', 'ARCHIVE_START'), 'unfinished-run'],
    ]);
    expect(report.forks.map((f) => [f.key, f.sharesPredecessorWith])).toEqual([
      [keyOf('run-0b', 'ARCHIVE_START'), keyOf('run-0', 'ARCHIVE_START')],
      [trail.find((w) => w.key.includes('-run-320-') && w.key.endsWith('-ARCHIVE_SUCCESS.json'))!.key, keyOf('run-320', 'ARCHIVE_START')],
    ]);
    expect(report.open.map((o) => o.key)).toEqual([keyOf('run-400', 'ARCHIVE_START'), keyOf('restore-480', 'RESTORE_START'), keyOf('run-final', 'ARCHIVE_START')]);
  });

  it('prints the same reports, text and JSON, whole and narrowed, as the implementation that held the whole trail', async () => {
    const since = new Date(Date.parse('2026-03-01T00:00:00.000Z') + 3000 * 7 * 60_000).toISOString();
    for (const [name, options] of [
      ['verify.txt', {}],
      ['verify.json', { json: true }],
      ['verify-since.txt', { since }],
      ['verify-table.json', { table: 'public.orders', json: true }],
      ['verify-other-table.txt', { table: 'other' }],
    ] as const) {
      const { code, out } = await verify(store, options);
      await expect(`exit ${code}\n${out}`).toMatchFileSnapshot(`./__snapshots__/audit-verify-at-scale/${name}`);
    }
  });

  it('lists the same records as the implementation that held the whole trail', async () => {
    const digests: Record<string, unknown> = {};
    for (const [name, options] of [
      ['text', {}],
      ['json', { json: true }],
      ['table-other', { table: 'other' }],
      ['since-json', { since: '2026-03-15', json: true }],
    ] as const) {
      const { code, out } = await list(store, options);
      digests[name] = { code, lines: out.split('\n').length, bytes: Buffer.byteLength(out), sha256: createHash('sha256').update(out).digest('hex'), head: out.slice(0, 200), tail: out.slice(-200) };
    }
    await expect(JSON.stringify(digests, null, 2) + '\n').toMatchFileSnapshot('./__snapshots__/audit-verify-at-scale/list-digests.json');
  });

  it('never holds more than a bounded number of record bodies at once (verify and list)', async () => {
    for (const command of [verify, list]) {
      const counting = new BodyCountingStore(store);
      await command(counting, { json: true });
      expect(counting.gets).toBe(trail.length - 1);
      // The reader fetches 16 at a time; the old one held all ~4,000 until verify began.
      expect(counting.maxAlive, command.name).toBeLessThanOrEqual(64);
      expect(counting.maxInFlight, command.name).toBeLessThanOrEqual(16);
    }
  });
});

describe('AuditChainVerifier', () => {
  it('refuses records out of key order instead of checking links against the wrong records', () => {
    const verifier = new AuditChainVerifier();
    verifier.add(trail[1]!);
    expect(() => verifier.add(trail[0]!)).toThrow(expect.objectContaining({ code: 'INTERNAL' }));
    expect(() => verifier.add(trail[1]!)).toThrow(expect.objectContaining({ code: 'INTERNAL' }));
  });
});

describe('audit verify over the same trail on an S3-compatible server', () => {
  let server: S3TestServer;
  beforeAll(async () => {
    server = await startS3Server();
  }, 60_000);
  afterAll(async () => {
    await server.stop();
  });

  it('gives the report it gives on the local store, through listing pages of 250 keys, with bounded bodies', async () => {
    // The trail's first 1,200 records (a trail as it stood earlier: the fork at the root, runs
    // killed and unfinished, one still open): five listing pages, and each verify reads every body
    // through s3rver. The whole trail would take ~4,000 requests a verify for nothing more.
    const prefix = 'scale/';
    const subRoot = await mkdtemp(path.join(tmpdir(), 'auditlog-verify-scale-s3-'));
    try {
      const local = new LocalObjectStore({ path: subRoot });
      const objects: { key: string; body: Buffer }[] = [];
      for await (const info of store.list('')) {
        if (objects.length === 1_200) break;
        const body = (await store.get(info.key))!;
        objects.push({ key: `${prefix}${info.key}`, body });
        await local.put(info.key, body);
      }
      await server.seedObjects(objects);
      const s3 = new S3ObjectStore(server.s3Config({ prefix }), { listPageSize: 250 });
      const fromLocal = await verify(local);
      const remote = await verify(s3);
      expect(fromLocal.out).toMatch(/: 1200 record\(s\), 1 problem\(s\), 1 fork\(s\)\nUNFINISHED: \S+-run-80-/);
      expect(remote.code).toBe(fromLocal.code);
      expect(remote.out.split(s3.description).join('<root>/')).toBe(fromLocal.out.split(local.description).join('<root>/'));
      const counting = new BodyCountingStore(s3);
      await verify(counting, { json: true });
      expect(counting.gets).toBe(objects.length);
      expect(counting.maxAlive).toBeLessThanOrEqual(64);
      expect(counting.maxInFlight).toBeLessThanOrEqual(16);
    } finally {
      await rm(subRoot, { recursive: true, force: true });
    }
  }, 120_000);
});

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

/**
 * Counts bodies it handed out that are still reachable (a FinalizationRegistry, sampled after a
 * forced collection every 250 gets) and gets in flight at once.
 */
class BodyCountingStore implements ObjectStore {
  readonly description: string;
  gets = 0;
  alive = 0;
  maxAlive = 0;
  inFlight = 0;
  maxInFlight = 0;
  private readonly registry = new FinalizationRegistry<void>(() => void this.alive--);

  constructor(private readonly inner: ObjectStore) {
    this.description = inner.description;
  }

  list(prefix: string, options?: ListOptions): AsyncIterable<ObjectInfo> {
    return this.inner.list(prefix, options);
  }

  async get(key: string): Promise<Buffer | undefined> {
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    const body = await this.inner.get(key);
    this.inFlight--;
    this.gets++;
    if (body !== undefined) {
      this.registry.register(body, undefined);
      this.alive++;
    }
    if (this.gets % 250 === 0) {
      // Finalizers run in a task after the collection that found their objects unreachable.
      gc();
      await sleep(20);
      gc();
      await sleep(20);
      this.maxAlive = Math.max(this.maxAlive, this.alive);
    }
    return body;
  }

  put = (...a: Parameters<ObjectStore['put']>): ReturnType<ObjectStore['put']> => this.inner.put(...a);
  head = (key: string): Promise<ObjectInfo | undefined> => this.inner.head(key);
  delete = (key: string): Promise<void> => this.inner.delete(key);
  deleteMany = (...a: Parameters<ObjectStore['deleteMany']>): ReturnType<ObjectStore['deleteMany']> => this.inner.deleteMany(...a);
  check = (): Promise<void> => this.inner.check();
}
