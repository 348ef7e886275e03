/**
 * The table's error after a COMMIT whose answer was lost says what reading the table back found.
 * Pure: every outcome of reconciliation, and the delete of copies of an already committed object,
 * whose marker resolves to "keep" whether or not the delete went through (found in review: the
 * message then claimed the batch's rows were gone from the table).
 */
import { describe, expect, it } from 'vitest';
import { describeCommitOutcome } from '../../src/archive/archive-batch.js';

describe('describeCommitOutcome', () => {
  it('committed: archived, rows gone, not in the summary', () => {
    const text = describeCommitOutcome('committed');
    expect(text).toMatch(/^read back from the table, the delete did commit: the batch is archived and its rows are gone from the table/);
    expect(text).toContain('summary does not count them');
  });

  it('unrecorded: archived, the audit record left for the next run', () => {
    expect(describeCommitOutcome('unrecorded')).toMatch(/^read back from the table, the delete did commit and the batch is archived, but its audit record could not be written: its pending marker is kept/);
  });

  it.each(['removed', 'nothing-written'] as const)('%s: not committed, rows stay in the table', (outcome) => {
    expect(describeCommitOutcome(outcome)).toBe('read back from the table, the delete did not commit: the batch\'s object was removed and its rows stay in the table for the next run');
  });

  it('other-table: left for that table', () => {
    expect(describeCommitOutcome('other-table')).toBe('its pending marker names another table: it was left for that table\'s runs');
  });

  it.each(['committed', 'unrecorded'] as const)('copies of a committed object (%s): the object is kept, and nothing is claimed about the copies', (outcome) => {
    const text = describeCommitOutcome(outcome, true);
    expect(text).toMatch(/^the batch's rows were copies of rows archived in that object before, which is kept as it is whatever the delete did/);
    expect(text).toContain('any copies still in the table are deleted against it by the next run');
    expect(text).not.toContain('gone from the table');
    expect(text).not.toContain('did commit');
    expect(text).not.toContain('read back from the table');
    // The audit record's fate is still told.
    expect(text.includes('audit record could not be written')).toBe(outcome === 'unrecorded');
  });

  it('copies, other-table: the marker\'s own answer stands', () => {
    expect(describeCommitOutcome('other-table', true)).toBe(describeCommitOutcome('other-table'));
  });
});
