/**
 * `auditlog wizard`: from a database URL to a checked configuration file. Each question is
 * answered by its flag when given; otherwise by the prompter (interactive), or — without one — by
 * the suggested default, or it is a USAGE error naming the flag to pass (automation never hangs
 * on a question). Detection findings go to `report` (stderr), so stdout can carry the YAML.
 */
import type { Env } from '../config/expand-env.js';
import { findDatabaseUrlProblem, MAX_RETENTION_DAYS, type DatabaseConfig } from '../config/schema.js';
import { AuditlogError } from '../core/errors.js';
import type { Queryable } from '../db/queryable.js';
import { findEnvVariable, renderConfigYaml, validateWizardConfig, type WizardAnswers, type WizardStorage, type WizardTable, type WrittenValue } from './build-config.js';
import { listTableRefusals } from '../db/catalog.js';
import { detectTable, listTables, loadAgeDistribution, type AgeDistribution, type TableDetection, type TableListing } from './inspect-database.js';
import { chooseTimestampColumn, clampRetentionDays, databaseNameFromUrl, suggestIndexSql, suggestRetentionDays, timestampAndKeyRefusals } from './suggest.js';

export interface Choice<T> {
  name: string;
  value: T;
  description?: string;
}

/** The questions the wizard asks; @inquirer/prompts in a terminal (src/cli/wizard-prompter.ts). */
export interface Prompter {
  input(question: { message: string; default?: string; validate?: (value: string) => true | string }): Promise<string>;
  select<T>(question: { message: string; choices: Choice<T>[]; default?: T }): Promise<T>;
  checkbox<T>(question: { message: string; choices: (Choice<T> & { checked?: boolean })[] }): Promise<T[]>;
  confirm(question: { message: string; default: boolean }): Promise<boolean>;
}

export interface WizardFlags {
  databaseUrl?: string;
  databaseUrlEnv?: string;
  databaseName?: string;
  tables?: string;
  timestampColumn?: string;
  retentionDays?: number;
  /** Compliance bounds: the suggestion stays inside them and they are written to `compliance:`. */
  minRetentionDays?: number;
  maxRetentionDays?: number;
  localPath?: string;
  bucket?: string;
  prefix?: string;
  region?: string;
  endpoint?: string;
  forcePathStyle?: boolean;
  sse?: 'none' | 'AES256' | 'aws:kms';
  sseKmsKeyId?: string;
  storageClass?: string;
}

export interface WizardDeps {
  flags: WizardFlags;
  env: Env;
  /** null: non-interactive (`--yes`, or no terminal). */
  prompter: Prompter | null;
  report: (line: string) => void;
  /** Opens the database the answers point at; the wizard closes it. */
  connect: (database: DatabaseConfig) => Promise<{ q: Queryable; close: () => Promise<void> }>;
  /** For the header of the file. */
  now: Date;
  /** Where the file will go, for messages ("-" for stdout). */
  outputName: string;
}

export interface WizardResult {
  answers: WizardAnswers;
  yaml: string;
}

const DATABASE_URL_VARS = ['DATABASE_URL', 'APP_DATABASE_URL', 'PGURL'];

export async function runWizard(deps: WizardDeps): Promise<WizardResult> {
  const { flags, env, prompter, report } = deps;
  const url = await askDatabaseUrl(deps);
  const urlText = 'env' in url ? env[url.env] ?? '' : url.value;
  // Checked before connecting, as `config validate` checks it: the driver reads a libpq keyword
  // string or a raw "#" in the password as a URL of another host, so the wizard failed with
  // "ENOTFOUND base" or a host cut out of the password, or inspected the server of a mysql:// URL
  // before refusing it (found by probing). The message never quotes the URL (it may hold a password).
  const urlProblem = findDatabaseUrlProblem(urlText);
  if (urlProblem !== undefined) throw new AuditlogError('USAGE', `${'env' in url ? `the database URL in ${url.env}` : 'the database URL'}: ${urlProblem}`);
  const databaseName = flags.databaseName ?? databaseNameFromUrl(urlText);
  const connection = await deps.connect({ name: databaseName, url: urlText, connection_pool_size: 2, tables: [] });
  let tables: WizardTable[];
  try {
    tables = await chooseTables(deps, connection.q, databaseName);
  } finally {
    await connection.close();
  }
  const storage = await askStorage(deps);
  const answers: WizardAnswers = {
    database: { name: databaseName, url },
    tables,
    storage,
    ...(flags.minRetentionDays === undefined && flags.maxRetentionDays === undefined
      ? {}
      : { compliance: { ...(flags.minRetentionDays === undefined ? {} : { min_retention_days: flags.minRetentionDays }), ...(flags.maxRetentionDays === undefined ? {} : { max_retention_days: flags.maxRetentionDays }) } }),
  };
  const yaml = renderConfigYaml(answers, deps.now.toISOString());
  // The same parser as `config validate`: what the wizard writes always loads.
  validateWizardConfig(yaml, env, (path) => wizardInputAt(path, flags), prompter !== null);
  if (prompter === null) report('config ok: validated with the same schema as `auditlog config validate`');
  return { answers, yaml };
}

/** Which flag sets the value at `path` of the configuration the wizard writes. */
const FLAG_AT: readonly [RegExp, keyof WizardFlags | 'databaseUrl', string][] = [
  [/^databases\[\d+\]\.tables\[\d+\]\.retention_days$/, 'retentionDays', '--retention-days'],
  [/^databases\[\d+\]\.tables\[\d+\]\.timestamp_column$/, 'timestampColumn', '--timestamp-column'],
  [/^databases\[\d+\]\.tables(\[|$)/, 'tables', '--tables'],
  [/^databases\[\d+\]\.name$/, 'databaseName', '--database-name'],
  [/^databases\[\d+\]\.url$/, 'databaseUrl', '--database-url'],
  [/^s3\.bucket$/, 'bucket', '--bucket'],
  [/^s3\.prefix$/, 'prefix', '--prefix'],
  [/^s3\.region$/, 'region', '--region'],
  [/^s3\.endpoint$/, 'endpoint', '--endpoint'],
  [/^s3\.force_path_style$/, 'forcePathStyle', '--force-path-style'],
  [/^s3\.sse$/, 'sse', '--sse'],
  [/^s3\.sse_kms_key_id$/, 'sseKmsKeyId', '--sse-kms-key-id'],
  [/^s3\.storage_class$/, 'storageClass', '--storage-class'],
  [/^local\.path$/, 'localPath', '--local-path'],
  [/^compliance\.min_retention_days$/, 'minRetentionDays', '--min-retention-days'],
  [/^compliance\.max_retention_days$/, 'maxRetentionDays', '--max-retention-days'],
];

export function wizardInputAt(path: string, flags: WizardFlags): { flag: string; given: boolean } | undefined {
  const rule = FLAG_AT.find(([pattern]) => pattern.test(path));
  if (rule === undefined) return undefined;
  const [, key, flag] = rule;
  if (key === 'databaseUrl' && flags.databaseUrlEnv !== undefined) return { flag: '--database-url-env', given: true };
  return { flag, given: flags[key] !== undefined };
}

async function askDatabaseUrl(deps: WizardDeps): Promise<WrittenValue> {
  const { flags, env, prompter, report } = deps;
  if (flags.databaseUrlEnv !== undefined) {
    if ((env[flags.databaseUrlEnv] ?? '') === '') throw new AuditlogError('USAGE', `--database-url-env ${flags.databaseUrlEnv}: that environment variable is not set (export it, or pass --database-url)`);
    return { env: flags.databaseUrlEnv };
  }
  if (flags.databaseUrl !== undefined) {
    const variable = findEnvVariable(flags.databaseUrl, env, DATABASE_URL_VARS);
    if (variable !== undefined) return { env: variable };
    if (hasPassword(flags.databaseUrl)) report(`warning: the database URL holds a password and is written into ${writtenTo(deps)} as is; put it in an environment variable and pass --database-url-env NAME to write \${NAME} instead`);
    return { value: flags.databaseUrl };
  }
  const fromEnv = DATABASE_URL_VARS.find((name) => (env[name] ?? '') !== '');
  if (fromEnv !== undefined) {
    report(`database: using ${fromEnv} from the environment (written as \${${fromEnv}})`);
    return { env: fromEnv };
  }
  if (prompter === null) throw new AuditlogError('USAGE', 'no database to inspect: pass --database-url URL or --database-url-env NAME (or set DATABASE_URL)');
  const typed = await prompter.input({ message: 'PostgreSQL URL (postgresql://user@host:5432/db), or the name of an environment variable holding it:', validate: (v) => (v.trim() === '' ? 'a URL or a variable name' : true) });
  const trimmed = typed.trim();
  if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(trimmed)) {
    if ((env[trimmed] ?? '') === '') throw new AuditlogError('USAGE', `environment variable ${trimmed} is not set: export it and run the wizard again`);
    return { env: trimmed };
  }
  const variable = findEnvVariable(trimmed, env, DATABASE_URL_VARS);
  if (variable !== undefined) return { env: variable };
  if (hasPassword(trimmed)) report(`warning: this URL holds a password and will be written into ${writtenTo(deps)} as is; prefer an environment variable (type its name instead)`);
  return { value: trimmed };
}

/** "-" (stdout) would read as a file name in messages. */
function writtenTo(deps: WizardDeps): string {
  return deps.outputName === '-' ? 'the printed configuration' : deps.outputName;
}

function hasPassword(url: string): boolean {
  try {
    return new URL(url).password !== '' || /[?&]password=/i.test(url);
  } catch {
    return false;
  }
}

const formatBytes = (n: number): string => (n >= 1024 ** 3 ? `${(n / 1024 ** 3).toFixed(1)} GB` : n >= 1024 ** 2 ? `${(n / 1024 ** 2).toFixed(1)} MB` : `${Math.round(n / 1024)} KB`);
const label = (t: { schema: string; name: string }): string => `${t.schema}.${t.name}`;

async function chooseTables(deps: WizardDeps, q: Queryable, databaseName: string): Promise<WizardTable[]> {
  const { flags, prompter, report } = deps;
  const listing = await listTables(q);
  if (listing.length === 0) throw new AuditlogError('USAGE', 'the database has no tables to archive (connected to the right database?)');
  report(`tables (largest first):`);
  for (const t of listing) report(`  ${label(t)}  ${formatBytes(t.totalBytes)}, ${t.estimatedRows === null ? 'rows not estimated yet (never analyzed)' : `~${t.estimatedRows.toLocaleString('en-US')} rows`}`);

  let chosen: TableListing[];
  if (flags.tables !== undefined) {
    chosen = flags.tables.split(',').map((raw) => findListed(listing, raw.trim()));
  } else if (prompter !== null) {
    chosen = await prompter.checkbox({ message: 'Tables to archive:', choices: listing.map((t, i) => ({ name: `${label(t)} (${formatBytes(t.totalBytes)})`, value: t, checked: i === 0 })) });
    if (chosen.length === 0) throw new AuditlogError('USAGE', 'no table chosen: nothing to configure');
  } else {
    throw new AuditlogError('USAGE', `which tables? pass --tables NAME[,NAME...] (one of: ${listing.slice(0, 10).map(label).join(', ')})`);
  }

  const columnFor = timestampColumnsFlag(flags.timestampColumn, chosen);
  const result: WizardTable[] = [];
  const refused: string[] = [];
  for (const t of chosen) {
    const table = await configureTable(deps, q, t, databaseName, columnFor(t));
    if (table !== null) result.push(table);
    else refused.push(label(t));
  }
  // Without a prompter nobody saw a question: a table `archive` would refuse is never left out
  // silently, nor written to fail the first run. Every chosen table was inspected, so all the
  // reasons are above; nothing is written.
  if (prompter === null && refused.length > 0) {
    throw new AuditlogError('USAGE', `\`auditlog archive\` would refuse ${refused.join(', ')} (reasons above): fix ${refused.length === 1 ? 'it' : 'them'}, or leave ${refused.length === 1 ? 'it' : 'them'} out of --tables; nothing written`, {
      details: { refused },
    });
  }
  if (result.length === 0) throw new AuditlogError('USAGE', 'none of the chosen tables can be archived (see above): nothing to configure');
  return result;
}

function findListed(listing: TableListing[], raw: string): TableListing {
  const dot = raw.indexOf('.');
  const [schema, name] = dot < 0 ? [undefined, raw] : [raw.slice(0, dot), raw.slice(dot + 1)];
  const matches = listing.filter((t) => t.name === name && (schema === undefined || t.schema === schema));
  if (matches.length === 1) return matches[0]!;
  if (matches.length > 1) throw new AuditlogError('USAGE', `--tables ${raw}: several schemas have that table (${matches.map(label).join(', ')}); write schema.name`);
  throw new AuditlogError('USAGE', `--tables ${raw}: no such table (names are case-sensitive; tables: ${listing.slice(0, 10).map(label).join(', ')})`);
}

/**
 * null when `archive` would refuse the table: every reason is reported ("skipped:" when
 * interactive, which goes on with the others; "refused:" without a prompter, where chooseTables
 * then fails).
 */
async function configureTable(deps: WizardDeps, q: Queryable, listed: TableListing, databaseName: string, columnFlag: string | undefined): Promise<WizardTable | null> {
  const { flags, prompter, report } = deps;
  const detection = await detectTable(q, listed.schema, listed.name);
  if (detection === null) throw new AuditlogError('USAGE', `table ${label(listed)} disappeared while the wizard ran`);
  report(`\n${label(listed)}:`);
  const refusals = await findWizardRefusals(q, databaseName, detection);
  if (refusals.length > 0) {
    for (const reason of refusals) report(`  ${prompter === null ? 'refused' : 'skipped'}: ${reason}`);
    return null;
  }
  // findWizardRefusals refuses a table without a key or a timestamp candidate.
  const key = detection.key!;
  report(`  key: ${key.kind} (${key.columns.join(', ')})`);
  for (const c of detection.timestampCandidates) report(`  timestamp candidate: ${c.name} (${c.type}${c.notNull ? ', not null' : ''}${c.indexed ? ', indexed' : ', no index'})`);
  const suggested = chooseTimestampColumn(detection.timestampCandidates)!;
  let column = suggested;
  if (columnFlag !== undefined) {
    const found = detection.timestampCandidates.find((c) => c.name === columnFlag);
    if (found === undefined) {
      throw new AuditlogError('USAGE', `--timestamp-column ${columnFlag}: ${label(listed)} has no timestamptz/timestamp/date column of that name (candidates: ${detection.timestampCandidates.map((c) => c.name).join(', ')})`);
    }
    column = found;
  } else if (prompter !== null && detection.timestampCandidates.length > 1) {
    column = await prompter.select({
      message: `Timestamp column of ${label(listed)} (rows older than the retention by this column are archived):`,
      choices: detection.timestampCandidates.map((c) => ({ name: `${c.name} (${c.type}${c.indexed ? ', indexed' : ', no index'})`, value: c })),
      default: suggested,
    });
  }
  report(`  timestamp column: ${column.name}${column === suggested && columnFlag === undefined ? ' (suggested)' : ''}`);
  if (!column.indexed) {
    report(`  warning: ${column.name} has no index: every batch would scan the table. Add one before the first run:`);
    for (const line of suggestIndexSql(detection, column.name).split('\n')) report(`    ${line}`);
  }
  if (!column.notNull) report(`  note: ${column.name} allows NULL; rows where it is NULL are never archived`);

  const distribution = await loadAgeDistribution(q, listed.schema, listed.name, column, listed.estimatedRows);
  for (const line of formatDistribution(distribution)) report(`  ${line}`);
  const bounds = { ...(flags.minRetentionDays === undefined ? {} : { min: flags.minRetentionDays }), ...(flags.maxRetentionDays === undefined ? {} : { max: flags.maxRetentionDays }) };
  const fromData = suggestRetentionDays(distribution);
  const suggestedDays = clampRetentionDays(fromData, bounds);
  report(`  suggested retention: ${suggestedDays} days${suggestedDays !== fromData ? ` (${fromData} from the age of the rows, moved inside the compliance bounds)` : ''}`);
  let retentionDays = flags.retentionDays ?? suggestedDays;
  if (flags.retentionDays === undefined && prompter !== null) {
    const answer = await prompter.input({
      message: `Retention of ${label(listed)} in days (older rows are archived):`,
      default: String(suggestedDays),
      validate: (v) => {
        if (!/^\d+$/.test(v.trim()) || Number(v) < 1 || Number(v) > MAX_RETENTION_DAYS) return `a whole number of days from 1 to ${MAX_RETENTION_DAYS}`;
        return clampRetentionDays(Number(v), bounds) === Number(v) ? true : `outside the compliance bounds (${bounds.min ?? 1}–${bounds.max ?? '∞'} days)`;
      },
    });
    retentionDays = Number(answer.trim());
  }
  const archivable = distribution.olderThan.find((b) => b.days === retentionDays)?.rows;
  if (archivable !== undefined) report(`  with ${retentionDays} days: ${archivable.toLocaleString('en-US')} of ${distribution.rows.toLocaleString('en-US')} rows would be archived now`);
  return { schema: listed.schema, name: listed.name, timestampColumn: column.name, primaryKey: key.columns, retentionDays };
}

/**
 * Why `auditlog archive` would refuse the table, in its own words: the wizard's key and timestamp
 * checks (with the fix to apply), then the catalog's refusals, read by the archiver's own checks
 * (src/db/table-refusals.ts) so the two cannot drift apart.
 */
async function findWizardRefusals(q: Queryable, databaseName: string, detection: TableDetection): Promise<string[]> {
  const reasons = timestampAndKeyRefusals(detection);
  const catalog = await listTableRefusals(q, databaseName, { schema: detection.schema, name: detection.name });
  return [...reasons, ...catalog.map((e) => e.message)];
}

/**
 * --timestamp-column read once: `created_at` for every table, or `audit=created_at,events=occurred_at`
 * per table; returns each chosen table's column (undefined: none given). Every pair must name a
 * chosen table, once, and every entry must be a pair: a typo in a table name was dropped silently
 * and the suggested column used instead (found by probing), which for an audit table can mean
 * archiving by the wrong clock.
 */
function timestampColumnsFlag(flag: string | undefined, chosen: readonly TableListing[]): (t: TableListing) => string | undefined {
  if (flag === undefined || !flag.includes('=')) return () => flag;
  const named = new Map<TableListing, string>();
  for (const pair of flag.split(',')) {
    const eq = pair.indexOf('=');
    const table = pair.slice(0, Math.max(eq, 0)).trim();
    if (eq <= 0 || pair.slice(eq + 1).trim() === '') {
      throw new AuditlogError('USAGE', `--timestamp-column "${pair.trim()}": expected TABLE=COLUMN for each table, or one COLUMN for all (e.g. audit=created_at,events=occurred_at)`);
    }
    const listed = chosen.find((t) => table === t.name || table === label(t));
    if (listed === undefined) {
      throw new AuditlogError('USAGE', `--timestamp-column ${pair.trim()}: ${table} is not one of the tables chosen (${chosen.map(label).join(', ')}); correct the name, or add the table to --tables`);
    }
    // Only the first pair of a table was read: a second one was dropped without a word.
    if (named.has(listed)) throw new AuditlogError('USAGE', `--timestamp-column names ${label(listed)} twice: give one column per table`);
    named.set(listed, pair.slice(eq + 1).trim());
  }
  return (t) => named.get(t);
}

export function formatDistribution(d: AgeDistribution): string[] {
  const lines = [`rows: ${d.rows.toLocaleString('en-US')}${d.sampled ? ' (estimated from a sample)' : ''}, oldest ${d.oldest ?? '-'}, newest ${d.newest ?? '-'}`];
  const buckets = d.olderThan.filter((b) => b.rows > 0).map((b) => `> ${b.days} days: ${b.rows.toLocaleString('en-US')} (${d.rows > 0 ? Math.round((100 * b.rows) / d.rows) : 0}%)`);
  lines.push(buckets.length === 0 ? 'every row is younger than 7 days' : `age: ${buckets.join(', ')}`);
  return lines;
}

async function askStorage(deps: WizardDeps): Promise<WizardStorage> {
  const { flags, env, prompter } = deps;
  if (flags.localPath !== undefined) return { kind: 'local', path: flags.localPath };
  if (flags.bucket === undefined && prompter !== null) {
    const kind = await prompter.select({ message: 'Archive to:', choices: [{ name: 'S3 or an S3-compatible server', value: 's3' as const }, { name: 'a local directory', value: 'local' as const }], default: 's3' as const });
    if (kind === 'local') return { kind: 'local', path: await prompter.input({ message: 'Archive directory:', default: './archive' }) };
  }
  const ask = async (value: string | undefined, flag: string, message: string, fallback: string | undefined, validate?: (v: string) => true | string): Promise<string> => {
    if (value !== undefined) return value;
    if (prompter !== null) return (await prompter.input({ message, ...(fallback === undefined ? {} : { default: fallback }), ...(validate === undefined ? {} : { validate }) })).trim();
    if (fallback !== undefined) return fallback;
    throw new AuditlogError('USAGE', `no ${flag.replace(/^--/, '')}: pass ${flag} (or --local-path DIR to archive to a directory)`);
  };
  const bucket = await ask(flags.bucket, '--bucket', 'Bucket:', undefined, (v) => (v.trim().length >= 3 ? true : 'at least 3 characters'));
  let prefix = await ask(flags.prefix, '--prefix', 'Key prefix (ends in "/", empty for the bucket root):', 'archives/');
  if (prefix !== '' && !prefix.endsWith('/')) prefix += '/';
  const region = await ask(flags.region, '--region', 'Region:', env.AWS_REGION ?? env.AWS_DEFAULT_REGION ?? 'us-east-1');
  const endpoint = (await ask(flags.endpoint, '--endpoint', 'Endpoint of an S3-compatible server (empty for AWS):', '')) || undefined;
  let sse = flags.sse;
  if (sse === undefined) {
    sse = prompter === null
      ? 'AES256'
      : await prompter.select({ message: 'Server-side encryption:', choices: [{ name: 'SSE-S3 (AES256)', value: 'AES256' as const }, { name: 'SSE-KMS (aws:kms)', value: 'aws:kms' as const }, { name: 'none', value: 'none' as const }], default: 'AES256' as const });
  }
  const sseKmsKeyId = sse === 'aws:kms' ? (await ask(flags.sseKmsKeyId, '--sse-kms-key-id', 'KMS key id or ARN (empty: the bucket\'s default key):', '')) || undefined : undefined;
  // Off AWS there is no instance role to fall back on: take the keys from the environment, as placeholders.
  const credentials = endpoint !== undefined && (env.AWS_ACCESS_KEY_ID ?? '') !== '' && (env.AWS_SECRET_ACCESS_KEY ?? '') !== ''
    ? { accessKeyId: { env: 'AWS_ACCESS_KEY_ID' }, secretAccessKey: { env: 'AWS_SECRET_ACCESS_KEY' } }
    : undefined;
  return {
    kind: 's3',
    bucket,
    prefix,
    region,
    ...(endpoint === undefined ? {} : { endpoint }),
    forcePathStyle: flags.forcePathStyle ?? endpoint !== undefined,
    sse,
    ...(sseKmsKeyId === undefined ? {} : { sseKmsKeyId }),
    ...(flags.storageClass === undefined ? {} : { storageClass: flags.storageClass }),
    ...(credentials === undefined ? {} : { credentials }),
  };
}

