/**
 * Holds from an HTTP endpoint. Anything short of a valid answer in time — unreachable, timeout,
 * non-2xx, larger than MAX_ANSWER_BYTES, not JSON, wrong shape — is LEGAL_HOLD_UNAVAILABLE, and the caller archives nothing
 * (fail closed): a hold we could not read might cover any table.
 */
import { z } from 'zod';
import type { HoldApiConfig } from '../config/schema.js';
import { AuditlogError } from '../core/errors.js';
import { describeFetchFailure } from '../core/describe-fetch-failure.js';
import { readBodyUpTo } from '../core/read-response-body.js';
import { redactSecrets, urlSecretParts } from '../config/mask-secrets.js';
import { holdTableNameProblem, type LegalHold } from './legal-hold.js';

const apiHoldSchema = z.object({
  database: z.string().min(1).optional(),
  table: z.string().min(1).refine((t) => holdTableNameProblem(t) === undefined, 'expected name or schema.name'),
  where: z.string().min(1).nullable().optional(),
  reason: z.string().min(1),
  set_by: z.string().min(1).nullable().optional(),
  expires_at: z.iso.datetime({ offset: true }).nullable().optional(),
});
const apiAnswerSchema = z.object({ holds: z.array(apiHoldSchema) });

/**
 * Most bytes of an answer read. A hold is a few hundred bytes of JSON (table, filter, reason, who,
 * until when): 16 MiB is tens of thousands of holds, where real lists hold tens or hundreds, and
 * it bounds what a misbehaving or hostile endpoint can make the process hold (an endless body was
 * read whole until the timeout: gigabytes over a fast link). The parsed answer is a few times this.
 */
export const MAX_ANSWER_BYTES = 16 * 1024 * 1024;

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
    new AuditlogError('LEGAL_HOLD_UNAVAILABLE', `legal holds API ${where} ${reason}: no table is archived, nor restored over (overwrite/upsert), until it answers; check legal_holds.api`, {
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
    // Not the error's own message, nor the error as cause: undici's messages carry the whole URL
    // (userinfo, query token) or the header value (found in review).
    throw unavailable(timedOut ? `did not answer within ${api.timeout_ms} ms` : describeHoldsApiFailure(error, api, input.authValue));
  }
  if (!response.ok) {
    await response.body?.cancel().catch(() => undefined);
    throw unavailable(`answered HTTP ${response.status}`);
  }
  let read: Awaited<ReturnType<typeof readBodyUpTo>>;
  try {
    read = await readBodyUpTo(response, MAX_ANSWER_BYTES);
  } catch (error) {
    const timedOut = error instanceof Error && (error.name === 'TimeoutError' || error.name === 'AbortError');
    throw unavailable(timedOut ? `did not finish its answer within ${api.timeout_ms} ms` : describeHoldsApiFailure(error, api, input.authValue));
  }
  if (!read.complete) throw unavailable(`answered more than ${MAX_ANSWER_BYTES} bytes (the most read from it; a list of holds is far smaller), so the rest was not read — fix the endpoint`);
  let body: unknown;
  try {
    // TextDecoder drops a leading byte order mark, as Response.json() did (some servers send one; found in review).
    body = JSON.parse(new TextDecoder().decode(read.bytes));
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

/**
 * Why fetch failed, without a secret: the URL's userinfo and query, and the auth header's value,
 * never appear. Known failures get a sentence with the fix; others what fetch says of its cause
 * (`fetch failed: connect ECONNREFUSED 127.0.0.1:9`), scrubbed of the URL's parts and the credential.
 */
export function describeHoldsApiFailure(error: unknown, api: Pick<HoldApiConfig, 'url' | 'auth_header' | 'auth_env'>, authValue?: string): string {
  const message = error instanceof Error ? error.message : String(error);
  if (/includes credentials/i.test(message)) {
    return 'cannot be called: legal_holds.api.url contains a user name or password (user:password@), which is never sent; remove it and pass the credential through auth_env';
  }
  if (/invalid header value/i.test(message)) {
    return `cannot be called: the value of ${api.auth_env === undefined ? 'the auth_env variable' : `the environment variable ${api.auth_env} (legal_holds.api.auth_env)`} is not a valid HTTP header value (a line break or control character?); fix that variable`;
  }
  if (/invalid header name/i.test(message)) {
    return `cannot be called: legal_holds.api.auth_header ${JSON.stringify(api.auth_header)} is not a valid HTTP header name; fix it`;
  }
  return `could not be reached (${describeFetchFailure(error, (text) => scrub(text, api.url, authValue))})`;
}

/** Removes the URL and every part of it that may carry a credential, and the auth value, from a message. */
function scrub(text: string, url: string, authValue?: string): string {
  const auth = authValue === undefined || authValue === '' ? [] : [authValue, ...authValue.split(/\s+/).filter((p) => p.length >= 4)];
  // Every query value and path segment, however short: an error detail loses nothing by it.
  return redactSecrets(text, [...urlSecretParts(url, 1), ...auth]);
}
