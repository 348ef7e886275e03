/**
 * A table that gets an INHERITS child while a run archives it (found by probing): the refusal of
 * tables with children runs when the plan is loaded, so page reads and the guarded delete must name
 * the table with ONLY, or the child's rows — read with the parent's columns only, the child's own
 * columns archived nowhere — are deleted whole.
 */
import { describe, expect, it } from 'vitest';
import { archiveWith } from '../helpers/archive-run.js';
import { inspectArchive } from '../helpers/archive-inspect.js';
import { useArchiveFixture } from '../helpers/archive-fixture.js';
import type { BatchPhase } from '../../src/archive/archive-context.js';

const fx = useArchiveFixture();
const ev = { name: 'ev', timestamp_column: 'created_at' };

describe('an INHERITS child attached during a run', () => {
  for (const phase of ['after-read', 'after-metadata'] as const satisfies readonly BatchPhase[]) {
    it(`deletes no row of the child (attached ${phase} of the first batch); every parent row is in the table or an archive exactly once`, async () => {
      await fx.db.query(`CREATE TABLE ev (id int PRIMARY KEY, created_at timestamptz NOT NULL, a text)`);
      await fx.db.query(`INSERT INTO ev SELECT g, timestamptz '2020-01-01' + g * interval '1 day', 'p' FROM generate_series(1, 30) g`);
      await fx.db.query(`CREATE TABLE kid (id int PRIMARY KEY, created_at timestamptz NOT NULL, a text, secret text NOT NULL)`);
      await fx.db.query(
        `INSERT INTO kid SELECT 100 + g, timestamptz '2020-01-01' + g * interval '1 day' + interval '1 hour', 'k', 'SECRET' || g FROM generate_series(1, 30) g`,
      );
      let attached = false;
      const summary = await archiveWith(fx.configFor([ev], { batch_size: 5, batches_in_flight: 1 }), fx.store, {
        onPhase: async (p) => {
          if (p === phase && !attached) {
            attached = true;
            await fx.db.query('ALTER TABLE kid INHERIT ev');
          }
        },
      });
      expect(attached).toBe(true);
      const kid = await fx.db.query<{ id: number; secret: string }>('SELECT id, secret FROM ONLY kid ORDER BY id');
      expect(kid.rows).toHaveLength(30);
      expect(kid.rows[0]).toEqual({ id: 101, secret: 'SECRET1' });

      const archive = await inspectArchive(fx.store);
      expect(archive.pendingMarkers).toEqual([]);
      const archived = archive.objects.flatMap((o) => o.lines.map((l) => JSON.parse(l) as { id: number }));
      expect(archived.every((r) => r.id <= 30)).toBe(true);
      const left = (await fx.db.query<{ id: number }>('SELECT id FROM ONLY ev ORDER BY id')).rows.map((r) => r.id);
      const everywhere = [...archived.map((r) => r.id), ...left].sort((a, b) => a - b);
      expect(everywhere).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
      expect(summary.tables[0]!.rowsArchived).toBe(archived.length);
    });
  }
});
