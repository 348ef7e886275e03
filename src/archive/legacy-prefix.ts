/**
 * Tables whose schema name holds a `.` got a new directory when schema dots were escaped
 * (archive-layout.ts, `encodeSchemaSegment`). What versions before wrote for them is still under
 * the old one, which this version neither reads nor changes: that directory may be another
 * table's (schema `a` table `b.c` for schema `a.b` table `c`), so nothing found there can be
 * decided on from the key alone. The run says so once per table, so the operator moves it
 * (docs/operations.md, "Schemas with a dot in their name").
 */
import { METADATA_SUFFIX, legacyTablePrefix, pendingPrefix } from '../core/archive-layout.js';
import { COMPRESSION_SPECS, sidecarCompression } from '../core/compression.js';
import { describeError } from '../core/errors.js';
import { isOtherTablesMarker, markerTableOf, parseMarker, sameMarkerTable, sidecarTable } from './pending-marker.js';
import type { ArchiveContext } from './archive-context.js';

/** Markers, then sidecars, read at most to tell this table's objects from another table's in a shared old directory. */
const MAX_SIDECARS_READ = 20;

/** Never throws: a listing that fails is itself only a warning, the run goes on with the new layout. */
export async function warnLegacyPrefix(ctx: Pick<ArchiveContext, 'store' | 'plan' | 'logger' | 'prefix'>): Promise<void> {
  const { plan } = ctx;
  const legacy = legacyTablePrefix(plan.database, plan.schema, plan.table);
  if (legacy === undefined) return;
  try {
    const found = await findOwnLegacyObject(ctx, legacy);
    if (found === undefined) return;
    ctx.logger.warn(
      { legacy_prefix: legacy, prefix: ctx.prefix, example: found },
      `archives of this table written by an earlier version are under ${legacy} (schema dots are now escaped: the table's directory is ${ctx.prefix}); this version does not read, reconcile or validate them there — move them as docs/operations.md "Schemas with a dot in their name" says`,
    );
  } catch (error) {
    ctx.logger.warn({ legacy_prefix: legacy, err: describeError(error) }, 'could not check the directory earlier versions used for this table');
  }
}

/**
 * A key under the old directory that is this table's: a sidecar naming it, or a pending marker not
 * naming another table (old markers carry no table: reported, since the warning only asks to look).
 */
async function findOwnLegacyObject(ctx: Pick<ArchiveContext, 'store' | 'plan'>, legacy: string): Promise<string | undefined> {
  const ours = markerTableOf(ctx.plan);
  let read = 0;
  for await (const info of ctx.store.list(pendingPrefix(legacy))) {
    if (read++ >= MAX_SIDECARS_READ) break;
    if (!isOtherTablesMarker(parseMarker(await ctx.store.get(info.key)), ours)) return info.key;
  }
  read = 0;
  for await (const info of ctx.store.list(legacy)) {
    if (!info.key.endsWith(METADATA_SUFFIX)) continue;
    if (read++ >= MAX_SIDECARS_READ) return undefined;
    const body = await ctx.store.get(info.key);
    if (body === undefined) continue;
    // A sidecar that cannot be read is not evidence either way.
    const named = sidecarTable(body);
    // A sidecar naming no codec this version knows is gzip's, as every sidecar before zstd was.
    if (named !== undefined && sameMarkerTable(named, ours)) return info.key.slice(0, -METADATA_SUFFIX.length) + COMPRESSION_SPECS[sidecarCompression(body) ?? 'gzip'].dataSuffix;
  }
  return undefined;
}
