/**
 * Throwaway databases on an existing server, for tests, the benchmark and the demo: each gets a
 * unique name so concurrent runs never share mutable tables (DESIGN.md §6).
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { AuditlogError, describeError } from '../core/errors.js';
import { quoteIdent } from './quote-ident.js';

export interface ScratchDatabase {
  name: string;
  url: string;
  /** Ends every session on it first (`WITH (FORCE)`, PostgreSQL 13+), so a leaked pool cannot block the drop. */
  drop(): Promise<void>;
}

/** True when a login succeeds within `timeoutMs`; for choosing a server, not for diagnosing one. */
export async function isPostgresReachable(url: string, timeoutMs = 1_500): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: timeoutMs });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** `prefix` is a lower-case SQL-safe word; a timestamp and random suffix make the name unique. */
export async function createScratchDatabase(serverUrl: string, prefix: string): Promise<ScratchDatabase> {
  if (!/^[a-z][a-z0-9_]{0,30}$/.test(prefix)) throw new AuditlogError('INTERNAL', `invalid scratch database prefix "${prefix}"`);
  const name = `${prefix}_${Date.now().toString(36)}_${randomBytes(4).toString('hex')}`;
  const url = replaceDatabaseInUrl(serverUrl, name);
  await runAdminStatement(serverUrl, `CREATE DATABASE ${quoteIdent(name)}`);
  let dropped: Promise<void> | undefined;
  return {
    name,
    url,
    drop() {
      dropped ??= runAdminStatement(serverUrl, `DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE)`);
      return dropped;
    },
  };
}

export function replaceDatabaseInUrl(serverUrl: string, database: string): string {
  let parsed: URL;
  try {
    parsed = new URL(serverUrl);
  } catch (error) {
    throw new AuditlogError('DB_CONNECT', 'the PostgreSQL server address is not a postgres:// URL', { cause: error });
  }
  parsed.pathname = `/${encodeURIComponent(database)}`;
  return parsed.toString();
}

async function runAdminStatement(serverUrl: string, sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: serverUrl, connectionTimeoutMillis: 10_000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.query(sql);
  } catch (error) {
    const target = describeServer(serverUrl);
    throw new AuditlogError('DB_QUERY', `${sql.split(' ').slice(0, 2).join(' ')} failed on ${target}: ${describeError(error)}`, {
      details: { server: target },
      cause: error,
    });
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** host:port only: the URL may carry a password. */
function describeServer(serverUrl: string): string {
  try {
    const parsed = new URL(serverUrl);
    return `${parsed.hostname || 'localhost'}:${parsed.port || '5432'}`;
  } catch {
    return 'the PostgreSQL server';
  }
}
