/**
 * The pending marker of a batch (`_auditlog/pending/…`, docs/format.md) and the pure rule that
 * reconciles a batch left in flight. No I/O here.
 *
 * Why the delete's transaction id is recorded: after a crash, the table alone cannot always
 * tell "the delete committed" from "the delete never ran and the application then updated or
 * deleted every row of the batch" — in both cases no row is left in its archived version. Keeping
 * the object in the second case would archive rows the application deleted and, for updated rows,
 * archive them twice. So the delete transaction takes its id first (`txid_current()`), records it
 * in the batch's metadata sidecar (older versions: in the marker), and only then deletes;
 * `txid_status()` later says whether it committed. The marker itself only says "in flight".
 */

import { isTxidText } from '../core/batch-metadata.js';

export interface PendingMarker {
  data_object: string;
  metadata_object: string;
  run_id: string;
  created_at: string;
  /**
   * The transaction id (`txid_current()`, epoch-extended) of the delete transaction started for
   * this object, written only by a batch that deletes copies of a committed object (whose sidecar
   * is never rewritten), and by older versions (null: none started yet). Absent otherwise — not
   * null, which older versions read as "no delete started": the sidecar names the transaction.
   */
  delete_txid?: string | null;
  /**
   * The database the batch was read from. A transaction id (and "row not in the table") only
   * means something in that database: a marker of another one — two configurations sharing one
   * archive prefix — is never decided on.
   */
  origin?: MarkerOrigin;
  /** Set when the batch found its object already committed and only deletes copies against it. */
  copies_of_committed?: boolean;
  /**
   * pg_class.oid of the table the batch was read from (as text). A name can be given to another
   * table (renamed, swapped) while a batch is in flight; the oid tells. Absent in older markers.
   */
  table_oid?: string;
  /**
   * The table the batch was read from (`databases[].name`, schema, table). Absent in markers of
   * older versions. A marker found under a table's prefix that names another table was put there
   * by an archiver of that table (two tables sharing one directory: schema `a.b` table `c` and
   * schema `a` table `b.c` did before schema dots were escaped): it is never decided on here.
   */
  table?: MarkerTable;
}

export interface MarkerTable {
  database: string;
  schema: string;
  table: string;
}

export interface MarkerOrigin {
  /** pg_control_system().system_identifier, or null when the server does not let us read it. */
  system_identifier: string | null;
  /** current_database() when the batch was read: a rename changes it. */
  database: string;
  /**
   * The database's oid (pg_database.oid, as text), which a rename keeps. Absent in markers of
   * older versions: those are told apart by name alone.
   */
  database_oid?: string;
}

export function serializeMarker(marker: PendingMarker): Buffer {
  return Buffer.from(JSON.stringify(marker) + '\n', 'utf8');
}

/** The marker, or undefined when it is torn or not one this version understands (then the table decides alone). */
export function parseMarker(body: Buffer | undefined): PendingMarker | undefined {
  if (body === undefined) return undefined;
  try {
    const m = JSON.parse(body.toString('utf8')) as Partial<PendingMarker>;
    if (typeof m.run_id !== 'string' || typeof m.data_object !== 'string') return undefined;
    if (m.delete_txid !== undefined && m.delete_txid !== null && !isTxidText(m.delete_txid)) return undefined;
    // A table identity that is there but malformed cannot be compared: treat the marker as torn.
    if (m.table !== undefined && !isMarkerTable(m.table)) return undefined;
    return m as PendingMarker;
  } catch {
    return undefined;
  }
}

/** `txid_status()`: null when the id is too old for PostgreSQL to remember. */
export type TxidStatus = 'committed' | 'aborted' | 'in progress' | null;

export interface ReconcileFacts {
  marker: PendingMarker | undefined;
  /** run_id and created_at of the object's metadata sidecar. */
  metadataRunId: string;
  metadataCreatedAt: string;
  /** Whether any row of the object is still in the table in its archived version (key and xmin). */
  anyArchivedVersionPresent: boolean;
  /** The marker names the oid of another table than the one under the configured name now. */
  tableReplaced?: boolean;
  /** txid_status(marker.delete_txid), when the marker has one. */
  deleteStatus?: TxidStatus;
  /**
   * txid_status() of the delete transaction the sidecar names (`delete_txid`), when it names one;
   * undefined for sidecars of older versions.
   */
  sidecarDeleteStatus?: TxidStatus;
}

/**
 * Whether a marker was written from another database than `ours` (unknown parts never differ).
 * Another cluster (system identifier) is another database. In one cluster, the same database oid
 * is the same database whatever it is called now: found by probing, `ALTER DATABASE … RENAME`
 * with batches in flight made every run refuse its own markers, and the advice of the refusal
 * (another prefix) left their rows where no command looks. Without both oids (a marker of an
 * older version) or both system identifiers (a server that hides it, where oids repeat from one
 * cluster to the next) the name decides, as it did before.
 */
export function isForeignMarker(marker: PendingMarker | undefined, ours: MarkerOrigin): boolean {
  const theirs = marker?.origin;
  if (theirs === undefined) return false;
  const bothSystems = theirs.system_identifier !== null && ours.system_identifier !== null;
  if (bothSystems && theirs.system_identifier !== ours.system_identifier) return true;
  if (bothSystems && typeof theirs.database_oid === 'string' && typeof ours.database_oid === 'string' && theirs.database_oid === ours.database_oid) return false;
  return theirs.database !== ours.database;
}

function isMarkerTable(t: unknown): t is MarkerTable {
  const o = t as Partial<Record<keyof MarkerTable, unknown>> | null;
  return typeof o === 'object' && o !== null && typeof o.database === 'string' && typeof o.schema === 'string' && typeof o.table === 'string';
}

/** The table identity markers carry, of a table plan (`databases[].name`, schema, table). */
export function markerTableOf(plan: { database: string; schema: string; table: string }): MarkerTable {
  return { database: plan.database, schema: plan.schema, table: plan.table };
}

export function sameMarkerTable(a: MarkerTable, b: MarkerTable): boolean {
  return a.database === b.database && a.schema === b.schema && a.table === b.table;
}

/** The table a metadata sidecar names, when it is readable enough to say; undefined otherwise. */
export function sidecarTable(body: Buffer): MarkerTable | undefined {
  try {
    const m: unknown = JSON.parse(body.toString('utf8'));
    return isMarkerTable(m) ? markerTableOf(m) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Whether a marker names another table than `ours` (a marker without a table identity — older
 * versions, or torn — does not: its key under our prefix is all we know).
 */
export function isOtherTablesMarker(marker: PendingMarker | undefined, ours: MarkerTable): boolean {
  const theirs = marker?.table;
  return theirs !== undefined && !sameMarkerTable(theirs, ours);
}

export type ReconcileDecision =
  /** The delete committed (or the object was committed by an earlier run): keep the object, drop the marker. */
  | 'keep'
  /** No delete of this object committed: remove the object, its sidecar and the marker. */
  | 'remove'
  /** The delete transaction is still open somewhere: decide nothing now. */
  | 'wait'
  /**
   * The delete committed, yet rows of the object are in the table in their archived versions: the
   * table under this name is not the one the batch deleted from. Touch nothing; an operator decides.
   */
  | 'conflict';

export function decideReconcile(facts: ReconcileFacts): ReconcileDecision {
  const { marker } = facts;
  // The delete removes all of the object's rows in their archived versions or none: one still
  // there proves no delete of this object committed. (A committed object's archived versions are
  // gone for good: rows back in the table carry new xmins.) In the same table that holds even when
  // txid_status says "committed": after a failover or a point-in-time restore that lost the
  // delete's commit, its id is handed to another transaction (found in review: a conflict there
  // wedged the table). But under a name now given to another table (the marker's oid differs) the
  // rows may be that table's — swapped with one filled in the same transaction, so sharing xmins
  // (found by probing: the committed objects were removed, their rows lost): no decision then.
  if (facts.anyArchivedVersionPresent) return facts.tableReplaced === true && (facts.sidecarDeleteStatus ?? facts.deleteStatus) === 'committed' ? 'conflict' : 'remove';
  // The batch found the object already committed (its rows were back in the table) and only
  // deleted copies against it: the object stands for rows deleted before and is never removed.
  // A marker that predates the flag is recognized by being written after the object's sidecar (by
  // a later run, or later in the same run): a fresh batch writes its marker before its upload.
  if (marker?.copies_of_committed === true) return 'keep';
  if (marker !== undefined && (marker.run_id !== facts.metadataRunId || marker.created_at > facts.metadataCreatedAt)) return 'keep';
  // The sidecar is written inside the delete transaction and names it. It outlives the marker, so
  // it decides even when the marker says no delete started: a marker can be that stale when
  // storage completes a write of it the archiver gave up on and retried after the batch committed
  // and its marker was removed (found by probing: the committed object was removed, its rows lost).
  if (facts.sidecarDeleteStatus !== undefined) return decideByStatus(facts.sidecarDeleteStatus);
  if (marker === undefined || marker.delete_txid === undefined) {
    // A torn marker or one of an older version: the table is all we have, and with no archived
    // version left the delete most likely committed. Keeping is the choice that cannot lose rows.
    return 'keep';
  }
  // No delete transaction started (a sidecar of an older version, which did not name it): every
  // row was changed or deleted by the application meanwhile.
  if (marker.delete_txid === null) return 'remove';
  return decideByStatus(facts.deleteStatus);
}

function decideByStatus(status: TxidStatus | undefined): ReconcileDecision {
  switch (status) {
    case 'committed':
      return 'keep';
    case 'aborted':
      return 'remove';
    case 'in progress':
      return 'wait';
    default:
      // PostgreSQL no longer remembers the transaction (it is older than the commit log it keeps):
      // fall back to the table, as for a marker without a transaction id.
      return 'keep';
  }
}
