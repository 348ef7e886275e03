/**
 * What a restore holds of a sidecar between selection and load: a summary without the deletion
 * manifest (it grew the peak RSS with the table), column lists shared between objects, and the
 * SHA-256 of the bytes read, which the load's second read must match.
 */
import { describe, expect, it } from 'vitest';
import { FORMAT_NAME, type BatchMetadata } from '../../src/core/batch-metadata.js';
import { isAuditlogError } from '../../src/core/errors.js';
import { rereadObjectMetadata } from '../../src/restore/check-object.js';
import { createSidecarSummarizer } from '../../src/restore/sidecar-summary.js';

const id = { database: 'app', schema: 'public', table: 'events' };

function sidecar(runId: string, keys: string[]): Buffer {
  const meta: Partial<BatchMetadata> = {
    format: FORMAT_NAME,
    format_version: 1,
    ...id,
    columns: [
      { name: 'id', type: 'bigint' },
      { name: 'payload', type: 'jsonb' },
    ],
    primary_key_columns: ['id'],
    record_count: keys.length,
    sha256_compressed: 'c'.repeat(64),
    sha256_uncompressed: 'u'.repeat(64),
    run_id: runId,
    primary_keys: keys.map((k) => [k]),
    xmins: keys.map(() => '100'),
  };
  return Buffer.from(JSON.stringify(meta));
}

const parse = (body: Buffer): BatchMetadata => JSON.parse(body.toString('utf8')) as BatchMetadata;

describe('sidecar summaries', () => {
  it('keep no manifest, and share one column list between objects', () => {
    const summarize = createSidecarSummarizer();
    const a = summarize(parse(sidecar('r1', ['1', '2'])), sidecar('r1', ['1', '2']));
    const b = summarize(parse(sidecar('r2', ['3'])), sidecar('r2', ['3']));
    expect(Object.keys(a).sort()).toEqual(['columns', 'created_at', 'max_primary_key', 'min_primary_key', 'primary_key_columns', 'record_count', 'run_id', 'sha256_compressed', 'sidecar_sha256']);
    expect(a).not.toHaveProperty('primary_keys');
    expect(a.record_count).toBe(2);
    expect(b.columns).toBe(a.columns);
    expect(b.primary_key_columns).toBe(a.primary_key_columns);
  });

  it('let the load accept the bytes selected and only those', () => {
    const selected = sidecar('r1', ['1', '2']);
    const summary = createSidecarSummarizer()(parse(selected), selected);
    expect(rereadObjectMetadata('k', Buffer.from(selected), summary, id).primary_keys).toEqual([['1'], ['2']]);

    const rewritten = sidecar('r1', ['1', '999']);
    const changed = (() => {
      try {
        rereadObjectMetadata('k', rewritten, summary, id);
      } catch (error) {
        return error;
      }
      return undefined;
    })();
    expect(isAuditlogError(changed) && changed.code === 'RESTORE_CORRUPT_OBJECT' && changed.details.check).toBe('metadata_changed');
    // Gone since selection: a sidecar problem like any other, which the caller settles against the store.
    expect(() => rereadObjectMetadata('k', undefined, summary, id)).toThrow(/metadata sidecar is missing/);
  });
});
