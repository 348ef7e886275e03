/**
 * Why a `fetch()` failed, in one line and without a secret. undici's own message is only
 * "fetch failed"; the reason is in `cause` (`connect ECONNREFUSED 127.0.0.1:9`, `self-signed
 * certificate`, `redirect count exceeded`, `other side closed`, `bad port`), so it is kept, with
 * its code when the message does not name it. undici's messages can carry the whole URL
 * (userinfo, query token): everything goes through `scrub`, which the caller builds from the URL
 * and any credential it sent.
 */
export function describeFetchFailure(error: unknown, scrub: (text: string) => string): string {
  if (!(error instanceof Error)) return scrub(String(error));
  const cause = error.cause;
  if (!(cause instanceof Error)) return scrub(withCode(error.message, errorCode(error)));
  // Node's happy-eyeballs connect fails with an AggregateError whose own message is empty.
  const first = cause instanceof AggregateError ? (cause.errors as unknown[]).find((e): e is Error => e instanceof Error) : undefined;
  const reason = cause.message !== '' ? cause.message : (first?.message ?? cause.name);
  return scrub(`${error.message}: ${withCode(reason, errorCode(cause) ?? errorCode(first))}`);
}

function withCode(message: string, code: string | undefined): string {
  return code === undefined || message.includes(code) ? message : `${message} (${code})`;
}

function errorCode(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' && /^[A-Z0-9_]+$/.test(code) ? code : undefined;
}
