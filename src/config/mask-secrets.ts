/**
 * Keeping secrets out of anything printed (DESIGN.md I6). Pure. Every function accepts any value,
 * not only a validated `Config`, because error messages about an *invalid* config need masking too.
 *
 * Where a secret is masked in free text (redactSecrets, for messages from drivers and servers): one
 * of SHORT_SECRET_LENGTH characters or more wherever it occurs, even inside a word; a shorter one
 * (a password "pw") only where it stands as a whole token — not preceded or followed by a letter,
 * digit or `_`. That is every place it appears as a value: alone, in a URL's userinfo
 * (`user:pw@host`), after `password=`, in quotes; and masking it inside ordinary words turned
 * "compression" into "com****ession" for the password "pr". Where the structure is known (a URL's
 * password, `password=` parameters, secret config keys: maskUrl, maskConfig) any length is masked.
 */
import { SECRET_KEYS } from './secret-keys.js';

export const MASK = '****';

const URL_SCHEME = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//;
// libpq accepts `?password=` in URLs and `password=` in keyword/value connection strings.
const PASSWORD_PARAM = /(^|[?&\s])((?:ssl)?password=)('(?:[^'\\]|\\.)*'|[^&\s]*)/gi;

/** `postgresql://user:pass@host/db` → `postgresql://user:****@host/db`; also `password=` parameters. */
export function maskUrl(url: string): string {
  let masked = url.replace(PASSWORD_PARAM, (_match, lead: string, key: string) => `${lead}${key}${MASK}`);
  const parts = splitUserinfo(masked);
  if (parts?.password !== undefined) masked = `${parts.scheme}${parts.user}:${MASK}@${parts.rest}`;
  return masked;
}

/** A deep copy of `config` with every SECRET_KEYS value replaced by `****` and URL passwords masked. */
export function maskConfig<T>(config: T): T {
  const masked = maskValue(config, undefined, new Set());
  // The holds API URL may carry its token in the query (as collectSecrets says): `config validate
  // --print` printed it in full (found by probing). Its query goes as a whole, `?****`.
  const api = isPlainObject(masked) && isPlainObject(masked['legal_holds']) ? masked['legal_holds']['api'] : undefined;
  if (isPlainObject(api) && typeof api['url'] === 'string') api['url'] = maskQuery(api['url']);
  return masked as T;
}

/** `https://h/p?token=x#f` → `https://h/p?****`. */
function maskQuery(url: string): string {
  const q = url.indexOf('?');
  return q < 0 ? url : `${url.slice(0, q)}?${MASK}`;
}

/**
 * Every secret in `config`, for `redactSecrets`: SECRET_KEYS values and URL passwords, both as
 * written and percent-decoded (a driver may echo either). Non-empty, unique, longest first.
 */
export function collectSecrets(config: unknown): string[] {
  const found = new Set<string>();
  // YAML aliases can make the parsed input of an invalid config circular (`a: &x [*x]`).
  const seen = new Set<unknown>();
  // Everything below a secret key is secret, so `password: [x]` in an invalid config is still caught.
  const visit = (value: unknown, inSecret: boolean): void => {
    if (typeof value === 'object' && value !== null) {
      if (seen.has(value)) return;
      seen.add(value);
    }
    if (Array.isArray(value)) {
      value.forEach((item) => visit(item, inSecret));
    } else if (isPlainObject(value)) {
      for (const [k, v] of Object.entries(value)) visit(v, inSecret || SECRET_KEYS.has(k));
    } else if (inSecret && ['string', 'number', 'bigint', 'boolean'].includes(typeof value)) {
      found.add(String(value));
    } else if (typeof value === 'string') {
      for (const secret of findUrlPasswords(value)) found.add(secret);
    }
  };
  visit(config, false);
  // The holds API URL may carry its token in the query (`?token=...`): its values are secrets too.
  // Values shorter than 4 characters (`?v=1`) are left out: masking every "1" would garble output.
  for (const secret of findQuerySecrets(holdsApiUrl(config))) found.add(secret);
  found.delete('');
  return [...found].sort((a, b) => b.length - a.length);
}

/** Below this length a secret is masked in free text only as a whole token (the module's comment says why). */
export const SHORT_SECRET_LENGTH = 4;

/**
 * `text` with every occurrence of any of `secrets` replaced by `****` — of a short one, every
 * occurrence as a whole token. For messages from drivers and SDKs.
 */
export function redactSecrets(text: string, secrets: readonly string[]): string {
  // Longest first, so a secret that contains another is replaced whole rather than leaving its remainder.
  const ordered = secrets.filter((s) => s.length > 0).sort((a, b) => b.length - a.length);
  let redacted = text;
  for (const secret of ordered) {
    redacted = secret.length >= SHORT_SECRET_LENGTH ? redacted.split(secret).join(MASK) : redacted.replace(wholeToken(secret), MASK);
  }
  return redacted;
}

/**
 * `secret` not preceded or followed by a letter, digit or `_` (of any script) — where an escape
 * right before it (`%3A`, `\u0022`, `\x22`, `\n`) counts as a boundary too: a short password in
 * a percent-encoded URL or an escaped JSON string is still a value (found in review).
 */
function wholeToken(secret: string): RegExp {
  const escaped = secret.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  const start = String.raw`(?:(?<![\p{L}\p{N}_])|(?<=%[0-9A-Fa-f]{2})|(?<=\\u[0-9A-Fa-f]{4})|(?<=\\x[0-9A-Fa-f]{2})|(?<=\\[a-z]))`;
  return new RegExp(`${start}${escaped}(?![\\p{L}\\p{N}_])`, 'gu');
}

// As in expand-env.ts; sources that reach the masking functions have already expanded without error.
const PLACEHOLDER = /\$\$\{|\$\{([^}]*)\}/g;

/**
 * A configuration value as written in the file (`${VAR:-default}` placeholders unexpanded), safe to
 * print. For a value under a secret key (`secret`) only the placeholder names are kept: every
 * default and every literal part become `****` (`${SLACK_WEBHOOK_URL:-****}`). Otherwise each
 * default is masked as a URL, and URL passwords in the text or written as defaults are masked
 * (`postgresql://u:${PW:-****}@h/db`), as are `secrets`.
 */
export function maskSource(source: string, secret: boolean, secrets: readonly string[] = []): string {
  let out = '';
  let literal = '';
  let withDefaults = '';
  let last = 0;
  const flushLiteral = (): void => {
    if (literal !== '') out += secret ? MASK : literal;
    literal = '';
  };
  for (const match of source.matchAll(PLACEHOLDER)) {
    literal += source.slice(last, match.index);
    withDefaults += source.slice(last, match.index);
    last = match.index + match[0].length;
    if (match[0] === '$${') {
      literal += '$${';
      withDefaults += '${';
      continue;
    }
    flushLiteral();
    const body = match[1] ?? '';
    const separator = body.indexOf(':-');
    if (separator < 0) {
      out += match[0];
      withDefaults += match[0];
      continue;
    }
    const name = body.slice(0, separator);
    const fallback = body.slice(separator + 2);
    out += `\${${name}:-${fallback === '' ? '' : secret ? MASK : maskUrl(fallback)}}`;
    withDefaults += fallback;
  }
  literal += source.slice(last);
  withDefaults += source.slice(last);
  flushLiteral();
  if (secret) return out;
  // The defaults put back in place: `postgresql://u:${PW:-hunter2}@h` holds the password hunter2.
  return redactSecrets(maskUrl(out), [...secrets, ...findUrlPasswords(withDefaults)]);
}

/**
 * The parts of `url` that may carry a credential, for `redactSecrets` on text a server sends back:
 * the URL, its path with the query, the query, the userinfo, and every path segment and query
 * value at least `minTokenLength` characters long, each as written and percent-decoded. Longest
 * first. A webhook URL is secret as a whole, but an error page echoes only part of it
 * (Express: `Cannot POST /hook/T0KEN123`), so redacting the whole URL is not enough.
 */
export function urlSecretParts(url: string, minTokenLength = 6): string[] {
  const parts = new Set<string>([url]);
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return [url];
  }
  const long = (text: string): boolean => text.length >= minTokenLength;
  parts.add(parsed.href);
  for (const path of [`${parsed.pathname}${parsed.search}${parsed.hash}`, `${parsed.pathname}${parsed.search}`, parsed.pathname]) {
    if (long(path)) parts.add(path);
  }
  for (const segment of parsed.pathname.split('/')) if (long(segment)) parts.add(segment);
  const query = parsed.search.slice(1);
  if (query !== '') parts.add(query);
  for (const pair of query.split('&')) {
    const value = pair.slice(pair.indexOf('=') + 1);
    if (long(pair)) parts.add(pair);
    if (long(value)) parts.add(value);
  }
  // Userinfo is a credential whatever its length.
  if (parsed.password !== '') parts.add(`${parsed.username}:${parsed.password}`).add(parsed.password);
  if (parsed.username !== '') parts.add(parsed.username);
  return [...parts].flatMap((p) => [p, safeDecode(p)]).filter((p, i, all) => p.length > 0 && all.indexOf(p) === i).sort((a, b) => b.length - a.length);
}

/** `ancestors` guards against circular input (YAML aliases can produce it). */
function maskValue(value: unknown, key: string | undefined, ancestors: Set<unknown>): unknown {
  if (key !== undefined && SECRET_KEYS.has(key) && value !== undefined && value !== null) return MASK;
  if (Array.isArray(value) || isPlainObject(value)) {
    if (ancestors.has(value)) return '[Circular]';
    ancestors.add(value);
    const copy = Array.isArray(value)
      ? value.map((item) => maskValue(item, undefined, ancestors))
      : Object.fromEntries(Object.entries(value).map(([k, v]) => [k, maskValue(v, k, ancestors)]));
    ancestors.delete(value);
    return copy;
  }
  if (typeof value === 'string') return maskUrl(value);
  return value;
}

function holdsApiUrl(config: unknown): string | undefined {
  if (!isPlainObject(config)) return undefined;
  const holds = config['legal_holds'];
  if (!isPlainObject(holds)) return undefined;
  const api = holds['api'];
  if (!isPlainObject(api)) return undefined;
  return typeof api['url'] === 'string' ? api['url'] : undefined;
}

function findQuerySecrets(url: string | undefined): string[] {
  if (url === undefined) return [];
  const q = url.indexOf('?');
  if (q < 0) return [];
  const query = url.slice(q + 1).split('#')[0]!;
  const values = query.split('&').flatMap((pair) => {
    const eq = pair.indexOf('=');
    const raw = eq < 0 ? '' : pair.slice(eq + 1);
    return [raw, safeDecode(raw.replace(/\+/g, ' '))];
  });
  return [query, ...values].filter((v) => v.length >= 4);
}

function findUrlPasswords(text: string): string[] {
  const passwords: string[] = [];
  for (const match of text.matchAll(PASSWORD_PARAM)) {
    const raw = match[3] ?? '';
    passwords.push(raw.startsWith("'") ? raw.slice(1, -1).replace(/\\(.)/g, '$1') : raw);
  }
  const password = splitUserinfo(text)?.password;
  if (password !== undefined) passwords.push(password);
  return passwords.flatMap((p) => [p, safeDecode(p)]).filter((p) => p.length > 0);
}

function splitUserinfo(url: string): { scheme: string; user: string; password?: string; rest: string } | undefined {
  const scheme = URL_SCHEME.exec(url)?.[0];
  if (scheme === undefined) return undefined;
  // Userinfo ends at the LAST "@": a password with an unencoded "@" or "/" must still be masked whole.
  // Over-masking when a path or query holds an "@" is harmless; under-masking leaks.
  const at = url.lastIndexOf('@');
  if (at < scheme.length) return undefined;
  const credentials = url.slice(scheme.length, at);
  const rest = url.slice(at + 1);
  const colon = credentials.indexOf(':');
  if (colon < 0) return { scheme, user: credentials, rest };
  return { scheme, user: credentials.slice(0, colon), password: credentials.slice(colon + 1), rest };
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}
