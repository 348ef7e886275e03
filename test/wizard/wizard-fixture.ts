/**
 * Tables the wizard tests detect: several timestamp columns, a composite key without an index on its
 * timestamp, no key at all, and two that `archive` refuses from the catalog (a DELETE trigger, a rule ON DELETE).
 */
import type { TestDatabase } from '../helpers/postgres.js';

export async function createWizardTables(db: TestDatabase): Promise<void> {
  await db.query(`CREATE TABLE audit_log (id bigint PRIMARY KEY, created_at timestamptz NOT NULL, updated_at timestamptz, archived_on date, actor text)`);
  await db.query(`CREATE INDEX audit_log_created_at_idx ON audit_log (created_at)`);
  // One row a day for 400 days: 310 are older than 90 days (77.5%), 220 older than 180 (55%).
  await db.query(`INSERT INTO audit_log SELECT i, now() - make_interval(days => i) - interval '1 hour', now(), NULL, 'user' || (i % 5) FROM generate_series(0, 399) i`);
  await db.query(`CREATE TABLE events_composite (tenant_id int, seq int, occurred_at timestamptz NOT NULL, body jsonb, PRIMARY KEY (tenant_id, seq))`);
  await db.query(`INSERT INTO events_composite SELECT i % 3, i, now() - make_interval(days => i) - interval '1 hour', '{"k": 1}' FROM generate_series(0, 99) i`);
  await db.query(`CREATE TABLE no_pk (id int, created_at timestamptz)`);
  await db.query(`CREATE TABLE "Mixed Case" (code text NOT NULL, logged_on date NOT NULL, UNIQUE (code))`);
  // Tables `archive` refuses before reading a row although they have a key and a timestamp: an
  // AFTER DELETE trigger that writes elsewhere, and a DO INSTEAD rule that makes the delete a soft delete.
  await db.query(`CREATE TABLE trig_log (id bigint PRIMARY KEY, created_at timestamptz NOT NULL)`);
  await db.query(`CREATE TABLE trig_log_deletions (id bigint PRIMARY KEY)`);
  await db.query(`CREATE FUNCTION trig_log_note_delete() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN INSERT INTO trig_log_deletions VALUES (OLD.id); RETURN OLD; END$$`);
  await db.query(`CREATE TRIGGER trig_log_after_delete AFTER DELETE ON trig_log FOR EACH ROW EXECUTE FUNCTION trig_log_note_delete()`);
  await db.query(`INSERT INTO trig_log SELECT i, now() - make_interval(days => i) FROM generate_series(0, 199) i`);
  await db.query(`CREATE TABLE soft_log (id bigint PRIMARY KEY, created_at timestamptz NOT NULL, deleted boolean NOT NULL DEFAULT false)`);
  await db.query(`CREATE RULE soft_log_soft_delete AS ON DELETE TO soft_log DO INSTEAD UPDATE soft_log SET deleted = true WHERE id = OLD.id`);
  await db.query(`INSERT INTO soft_log SELECT i, now() - make_interval(days => i) FROM generate_series(0, 199) i`);
  await db.query(`ANALYZE`);
}
