import { describe, expect, it } from 'vitest';
import { decideReconcile, isForeignMarker, isOtherTablesMarker, parseMarker, serializeMarker, type PendingMarker, type ReconcileFacts } from '../../src/archive/pending-marker.js';

const marker = (over: Partial<PendingMarker> = {}): PendingMarker => ({
  data_object: 'app/public.events/year=2026/month=11/day=01/000000-abc.jsonl.gz',
  metadata_object: 'app/public.events/year=2026/month=11/day=01/000000-abc.metadata.json',
  run_id: 'run-1',
  created_at: '2026-11-30T01:00:00.000Z',
  delete_txid: null,
  ...over,
});

/** A fresh batch's sidecar: same run, written after the marker. */
const facts = (over: Partial<ReconcileFacts> = {}): ReconcileFacts => ({
  marker: marker(),
  metadataRunId: 'run-1',
  metadataCreatedAt: '2026-11-30T01:00:00.250Z',
  anyArchivedVersionPresent: false,
  ...over,
});

describe('decideReconcile', () => {
  it('removes the object while any row is still in the table in its archived version, whatever the marker says', () => {
    expect(decideReconcile(facts({ anyArchivedVersionPresent: true }))).toBe('remove');
    expect(decideReconcile(facts({ anyArchivedVersionPresent: true, marker: marker({ delete_txid: '900' }), deleteStatus: 'aborted' }))).toBe('remove');
    expect(decideReconcile(facts({ anyArchivedVersionPresent: true, marker: marker({ delete_txid: '900' }), deleteStatus: 'in progress' }))).toBe('remove');
    expect(decideReconcile(facts({ anyArchivedVersionPresent: true, marker: undefined }))).toBe('remove');
  });

  it('with no archived version left, follows the delete transaction: committed keeps, aborted or never started removes, open waits', () => {
    expect(decideReconcile(facts({ marker: marker({ delete_txid: '900' }), deleteStatus: 'committed' }))).toBe('keep');
    expect(decideReconcile(facts({ marker: marker({ delete_txid: '900' }), deleteStatus: 'aborted' }))).toBe('remove');
    expect(decideReconcile(facts({ marker: marker({ delete_txid: null }) }))).toBe('remove');
    expect(decideReconcile(facts({ marker: marker({ delete_txid: '900' }), deleteStatus: 'in progress' }))).toBe('wait');
  });

  it('keeps the object when it cannot know: a torn marker, a marker of an older version, a transaction PostgreSQL forgot', () => {
    expect(decideReconcile(facts({ marker: undefined }))).toBe('keep');
    const { delete_txid: _omitted, ...older } = marker();
    expect(decideReconcile(facts({ marker: older }))).toBe('keep');
    expect(decideReconcile(facts({ marker: marker({ delete_txid: '900' }), deleteStatus: null }))).toBe('keep');
  });

  it('never removes an object committed before its marker was written (copies deleted against it), even with the delete aborted', () => {
    const later = { marker: marker({ delete_txid: '900' }), deleteStatus: 'aborted' as const };
    expect(decideReconcile(facts({ ...later, metadataRunId: 'run-0' }))).toBe('keep');
    expect(decideReconcile(facts({ ...later, metadataCreatedAt: '2026-11-29T23:00:00.000Z' }))).toBe('keep');
    expect(decideReconcile(facts({ marker: marker({ delete_txid: null }), metadataRunId: 'run-0' }))).toBe('keep');
  });
});

describe('decideReconcile with the delete transaction named by the sidecar', () => {
  it('follows the sidecar\'s transaction, whatever a marker without one says', () => {
    // Found by probing: a marker PUT that storage completed after the batch committed and its
    // marker was removed said "no delete started", and the committed object was removed.
    expect(decideReconcile(facts({ sidecarDeleteStatus: 'committed' }))).toBe('keep');
    expect(decideReconcile(facts({ sidecarDeleteStatus: 'aborted' }))).toBe('remove');
    expect(decideReconcile(facts({ sidecarDeleteStatus: 'in progress' }))).toBe('wait');
    expect(decideReconcile(facts({ sidecarDeleteStatus: null }))).toBe('keep');
    expect(decideReconcile(facts({ marker: undefined, sidecarDeleteStatus: 'aborted' }))).toBe('remove');
  });

  it('still removes the object while a row is in the table in its archived version, and keeps a copies-only batch\'s object', () => {
    expect(decideReconcile(facts({ anyArchivedVersionPresent: true, sidecarDeleteStatus: 'aborted' }))).toBe('remove');
    expect(decideReconcile(facts({ marker: marker({ copies_of_committed: true, delete_txid: '900' }), deleteStatus: 'aborted', sidecarDeleteStatus: 'aborted' }))).toBe('keep');
  });
});

describe('decideReconcile, found by probing', () => {
  it('a committed delete with archived versions under a name now given to another table is a conflict, never a removal', () => {
    expect(decideReconcile(facts({ anyArchivedVersionPresent: true, tableReplaced: true, sidecarDeleteStatus: 'committed' }))).toBe('conflict');
    expect(decideReconcile(facts({ anyArchivedVersionPresent: true, tableReplaced: true, marker: marker({ delete_txid: '900' }), deleteStatus: 'committed' }))).toBe('conflict');
    // The sidecar's transaction decides over the marker's.
    expect(decideReconcile(facts({ anyArchivedVersionPresent: true, tableReplaced: true, marker: marker({ delete_txid: '900' }), deleteStatus: 'committed', sidecarDeleteStatus: 'aborted' }))).toBe('remove');
  });

  it('in the same table, archived versions present outweigh "committed": a lost commit whose id was reused (found in review)', () => {
    expect(decideReconcile(facts({ anyArchivedVersionPresent: true, tableReplaced: false, sidecarDeleteStatus: 'committed' }))).toBe('remove');
    expect(decideReconcile(facts({ anyArchivedVersionPresent: true, sidecarDeleteStatus: 'committed' }))).toBe('remove');
  });
});

describe('decideReconcile, found in review', () => {
  it('checks the table first: a marker that looks newer than its sidecar (a clock step back) cannot keep an object whose rows are still there', () => {
    expect(decideReconcile(facts({ anyArchivedVersionPresent: true, metadataCreatedAt: '2026-11-30T00:59:59.000Z' }))).toBe('remove');
    expect(decideReconcile(facts({ anyArchivedVersionPresent: true, metadataRunId: 'run-0' }))).toBe('remove');
  });

  it('keeps the object of a copies-only batch by its flag, whatever the transaction did', () => {
    expect(decideReconcile(facts({ marker: marker({ delete_txid: '900', copies_of_committed: true }), deleteStatus: 'aborted' }))).toBe('keep');
  });
});

describe('isForeignMarker', () => {
  const ours = { system_identifier: '7713', database: 'app' };
  it('tells a marker of another database or cluster, and never guesses from what is unknown', () => {
    expect(isForeignMarker(marker({ origin: ours }), ours)).toBe(false);
    expect(isForeignMarker(marker({ origin: { system_identifier: '7713', database: 'app_copy' } }), ours)).toBe(true);
    expect(isForeignMarker(marker({ origin: { system_identifier: '9999', database: 'app' } }), ours)).toBe(true);
    expect(isForeignMarker(marker({ origin: { system_identifier: null, database: 'app' } }), ours)).toBe(false);
    expect(isForeignMarker(marker({ origin: { system_identifier: '9999', database: 'app' } }), { system_identifier: null, database: 'app' })).toBe(false);
    expect(isForeignMarker(marker(), ours)).toBe(false);
    expect(isForeignMarker(undefined, ours)).toBe(false);
  });

  it('the same cluster and database oid is the same database under another name (ALTER DATABASE … RENAME); without both oids and both systems the name decides', () => {
    const renamed = { system_identifier: '7713', database: 'app_renamed', database_oid: '16384' };
    // Found by probing: a rename with batches in flight made every run refuse its own markers.
    expect(isForeignMarker(marker({ origin: { system_identifier: '7713', database: 'app', database_oid: '16384' } }), renamed)).toBe(false);
    // Another database of the cluster, another cluster: foreign, whatever the names.
    expect(isForeignMarker(marker({ origin: { system_identifier: '7713', database: 'app', database_oid: '16390' } }), renamed)).toBe(true);
    expect(isForeignMarker(marker({ origin: { system_identifier: '9999', database: 'app_renamed', database_oid: '16384' } }), renamed)).toBe(true);
    // A marker of an older version (no oid): the name decides, as before.
    expect(isForeignMarker(marker({ origin: { system_identifier: '7713', database: 'app' } }), renamed)).toBe(true);
    expect(isForeignMarker(marker({ origin: { system_identifier: '7713', database: 'app_renamed' } }), renamed)).toBe(false);
    // Oids repeat from one cluster to the next: with a system identifier unknown, the name decides.
    expect(isForeignMarker(marker({ origin: { system_identifier: null, database: 'app', database_oid: '16384' } }), renamed)).toBe(true);
    expect(isForeignMarker(marker({ origin: { system_identifier: '7713', database: 'app', database_oid: '16384' } }), { ...renamed, system_identifier: null })).toBe(true);
    // The same name with another oid (dropped and created again) is still taken as this one, as before.
    expect(isForeignMarker(marker({ origin: { system_identifier: '7713', database: 'app_renamed', database_oid: '1' } }), renamed)).toBe(false);
  });
});

describe('parseMarker', () => {
  it('round-trips a marker and refuses torn or foreign ones', () => {
    const m = marker({ delete_txid: '123456789012' });
    expect(parseMarker(serializeMarker(m))).toEqual(m);
    expect(parseMarker(Buffer.from('{"data_obj'))).toBeUndefined();
    expect(parseMarker(Buffer.from('{"data_object":"k"}'))).toBeUndefined();
    expect(parseMarker(serializeMarker(marker({ delete_txid: '12; DROP' })))).toBeUndefined();
    expect(parseMarker(undefined)).toBeUndefined();
  });
});

describe('isOtherTablesMarker', () => {
  const ours = { database: 'app', schema: 'a.b', table: 'c' };
  it('tells this table from another whose dotted name reads the same, and trusts markers without a table', () => {
    expect(isOtherTablesMarker(marker({ table: ours }), ours)).toBe(false);
    expect(isOtherTablesMarker(marker({ table: { database: 'app', schema: 'a', table: 'b.c' } }), ours)).toBe(true);
    expect(isOtherTablesMarker(marker({ table: { database: 'other', schema: 'a.b', table: 'c' } }), ours)).toBe(true);
    // Older versions wrote no table: the key under our prefix is all there is (the sidecar is checked too).
    expect(isOtherTablesMarker(marker(), ours)).toBe(false);
    expect(isOtherTablesMarker(undefined, ours)).toBe(false);
  });

  it('keeps the table through serialize/parse, reads markers without one, and treats a malformed one as torn', () => {
    expect(parseMarker(serializeMarker(marker({ table: ours })))?.table).toEqual(ours);
    expect(parseMarker(serializeMarker(marker()))).toEqual(marker());
    expect(parseMarker(Buffer.from(JSON.stringify({ ...marker(), table: { database: 'app', schema: 'a.b' } })))).toBeUndefined();
  });
});
