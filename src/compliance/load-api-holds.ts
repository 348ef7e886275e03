/**
 * Holds from an HTTP endpoint. Anything short of a valid answer in time — unreachable, timeout,
 * non-2xx, not JSON, wrong shape — is LEGAL_HOLD_UNAVAILABLE, and the caller archives nothing
 * (fail closed): a hold we could not read might cover any table.
 */
import { z } from 'zod';
import type { HoldApiConfig } from '../config/schema.js';
import { AuditlogError, describeError } from '../core/errors.js';
import type { LegalHold } from './legal-hold.js';

const apiHoldSchema = z.object({
  database: z.string().min(1).optional(),
  table: z.string().min(1),
  where: z.string().min(1).nullable().optional(),
  reason: z.string().min(1),
  set_by: z.string().min(1).nullable().optional(),
  expires_at: z.iso.datetime({ offset: true }).nullable().optional(),
});
const apiAnswerSchema = z.object({ holds: z.array(apiHoldSchema) });

export interface ApiHoldsInput {
  api: HoldApiConfig;
  /** The credential read from the environment variable `api.auth_env` (by the CLI); never printed. */
  authValue?: string;
  fetch?: typeof fetch;
}

export async function loadApiHolds(input: ApiHoldsInput): Promise<LegalHold[]> {
  const { api } = input;
  // The URL may carry a token in its query: messages name the origin and path only.
  const where = safeUrl(api.url);
  const unavailable = (reason: string, cause?: unknown): AuditlogError =>
    new AuditlogError('LEGAL_HOLD_UNAVAILABLE', `legal holds API ${where} ${reason}: no table is archived until it answers; check legal_holds.api`, {
      details: { url: where },
      ...(cause === undefined ? {} : { cause }),
    });
  let response: Response;
  try {
    response = await (input.fetch ?? fetch)(api.url, {
      headers: { accept: 'application/json', ...(input.authValue === undefined ? {} : { [api.auth_header]: input.authValue }) },
      signal: AbortSignal.timeout(api.timeout_ms),
    });
  } catch (error) {
    const timedOut = error instanceof Error && (error.name === 'TimeoutError' || error.name === 'AbortError');
    throw unavailable(timedOut ? `did not answer within ${api.timeout_ms} ms` : `could not be reached (${describeError(error)})`, error);
  }
  if (!response.ok) throw unavailable(`answered HTTP ${response.status}`);
  let body: unknown;
  try {
    body = await response.json();
  } catch (error) {
    throw unavailable('answered something that is not JSON', error);
  }
  const parsed = apiAnswerSchema.safeParse(body);
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    throw unavailable(`answered JSON of the wrong shape (${first === undefined ? 'invalid' : `${first.path.join('.') || '(root)'}: ${first.message}`}; expected {"holds": [{"table", "reason", "where"?, "expires_at"?, ...}]})`);
  }
  return parsed.data.holds.map((h) => ({
    source: 'api' as const,
    ...(h.database === undefined ? {} : { database: h.database }),
    table: h.table,
    ...(h.where == null ? {} : { where: h.where }),
    reason: h.reason,
    ...(h.set_by == null ? {} : { setBy: h.set_by }),
    ...(h.expires_at == null ? {} : { expiresAt: h.expires_at }),
  }));
}

function safeUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.origin}${u.pathname}`;
  } catch {
    return '(invalid url)';
  }
}
