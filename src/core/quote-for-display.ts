/**
 * Values as a user reads them in a message or a report line (pure). A key value printed bare
 * hides what matters most when two keys look alike: an empty string, spaces at either end, a
 * comma inside one value of a list, a tab or a newline. So a string is JSON-quoted (`"a, b"`,
 * `""`, `"\t"`), a number is written as it is, and SQL NULL as NULL.
 *
 * JSON escapes only U+0000–U+001F, `"` and `\`; characters that print as nothing or as a plain
 * space are escaped as `\uXXXX` too — DEL and the C1 controls, format characters (zero-width
 * space, byte order mark, bidi overrides), line and paragraph separators, and spaces other than
 * U+0020. The result is still a JSON string: `JSON.parse` gives the value back.
 */
export type DisplayValue = string | number | bigint | null;

const HIDDEN = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Zs}]/gu;

export function quoteForDisplay(value: DisplayValue): string {
  if (value === null) return 'NULL';
  if (typeof value !== 'string') return String(value);
  return JSON.stringify(value).replace(HIDDEN, (c) => (c === ' ' ? c : escapeCodeUnits(c)));
}

/** A key or tuple of values: `(42, "a, b", NULL)`. */
export function quoteListForDisplay(values: readonly DisplayValue[]): string {
  return `(${values.map(quoteForDisplay).join(', ')})`;
}

function escapeCodeUnits(c: string): string {
  let out = '';
  for (let i = 0; i < c.length; i++) out += `\\u${c.charCodeAt(i).toString(16).padStart(4, '0')}`;
  return out;
}

/**
 * One argument of a command line a message suggests, as a POSIX shell reads it back: bare when
 * it holds only characters no shell treats specially, else single-quoted. Table names may hold
 * spaces, quotes and semicolons; a suggested command must still run as printed.
 */
export function quoteShellArg(arg: string): string {
  return /^[A-Za-z0-9_.,:=@%+/-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}
