/**
 * The lexical half of checking a record-level hold's `where` text (the other half asks
 * PostgreSQL to parse it against the table: src/db/hold-queries.ts). The text is placed inside
 * `NOT (…)` in the archiver's SELECT and DELETE, so anything that could end that parenthesis or
 * statement early is refused before it reaches the database: a `;`, a comment, an unbalanced
 * parenthesis or quote, and dollar quoting (its delimiters are too free-form to check here).
 * Pure. Returns the problem, or undefined when the text is acceptable.
 */
export function findFilterTextProblem(text: string): string | undefined {
  if (text.trim() === '') return 'it is empty';
  if (text.includes('\0')) return 'it contains a NUL character';
  let depth = 0;
  let i = 0;
  while (i < text.length) {
    const ch = text[i]!;
    const next = text[i + 1];
    if (ch === "'" || ch === '"') {
      // Doubled quotes inside a literal or identifier are the quote itself.
      let j = i + 1;
      for (;;) {
        if (j >= text.length) return `it has an unterminated ${ch === "'" ? 'string literal' : 'quoted identifier'}`;
        if (text[j] === ch) {
          if (text[j + 1] === ch) {
            j += 2;
            continue;
          }
          break;
        }
        // E'...' strings allow backslash escapes; refusing every backslash keeps the scan exact.
        if (ch === "'" && text[j] === '\\') return 'it has a backslash inside a string literal (write the character itself, or use a doubled quote for a quote)';
        j++;
      }
      i = j + 1;
      continue;
    }
    if (ch === ';') return 'it contains ";" outside a string literal';
    if (ch === '-' && next === '-') return 'it contains a "--" comment';
    if (ch === '/' && next === '*') return 'it contains a "/*" comment';
    if (ch === '*' && next === '/') return 'it contains "*/"';
    // Inside an identifier (`a$b`) a `$` is just a letter; at the start of a token it opens a
    // dollar-quoted string (`$$`, `$tag$`) or is a bind parameter (`$1`).
    if (ch === '$' && !/[A-Za-z0-9_$]/.test(text[i - 1] ?? '')) {
      return /[0-9]/.test(next ?? '') ? 'it contains a bind parameter ($1)' : 'it contains dollar quoting ($tag$ or $$): use a single-quoted literal';
    }
    if (ch === '(') depth++;
    if (ch === ')') {
      depth--;
      if (depth < 0) return 'it closes a parenthesis it did not open';
    }
    i++;
  }
  if (depth !== 0) return 'it has an unclosed parenthesis';
  return undefined;
}

/**
 * Words outside string literals, lower-cased (quoted identifiers unquoted), each with whether a
 * `(` follows: the names a filter calls, and its keywords. Assumes findFilterTextProblem passed.
 */
function scanWords(text: string): { word: string; call: boolean; quoted: boolean }[] {
  const out: { word: string; call: boolean; quoted: boolean }[] = [];
  let i = 0;
  const callAt = (j: number): boolean => {
    while (j < text.length && /\s/.test(text[j]!)) j++;
    return text[j] === '(';
  };
  while (i < text.length) {
    const ch = text[i]!;
    if (ch === "'") {
      let j = i + 1;
      while (j < text.length && !(text[j] === "'" && text[j + 1] !== "'")) j += text[j] === "'" ? 2 : 1;
      i = j + 1;
      continue;
    }
    if (ch === '"') {
      let j = i + 1;
      let word = '';
      while (j < text.length && !(text[j] === '"' && text[j + 1] !== '"')) {
        word += text[j];
        j += text[j] === '"' ? 2 : 1;
      }
      out.push({ word: word.toLowerCase(), call: callAt(j + 1), quoted: true });
      i = j + 1;
      continue;
    }
    if (/[A-Za-z_]/.test(ch)) {
      let j = i;
      while (j < text.length && /[A-Za-z0-9_$]/.test(text[j]!)) j++;
      out.push({ word: text.slice(i, j).toLowerCase(), call: callAt(j), quoted: false });
      i = j;
      continue;
    }
    i++;
  }
  return out;
}

/**
 * A hold filter is an expression over the table's own row (found in review: a subquery could read
 * any table the archiver may read, and a function such as set_config could change the archiver's
 * session). Subqueries are refused here; the functions it calls are returned for the database to
 * check (only immutable and stable ones are accepted).
 */
export function findFilterScopeProblem(text: string): string | undefined {
  // Keywords only unquoted: "select" or "table" in double quotes is a column name.
  const keyword = scanWords(text).find((w) => !w.quoted && (w.word === 'select' || w.word === 'table'));
  if (keyword === undefined) return undefined;
  // `TABLE name` is a subquery too (`id IN (TABLE other)`), and inside the archiver's statements it
  // could even name one of their own WITH queries (found in review).
  return `it contains a subquery (${keyword.word.toUpperCase()}): a hold filter may only use the columns of the held row; list values instead, e.g. customer_id IN (4711, 4712)`;
}

export function filterFunctionNames(text: string): string[] {
  return [...new Set(scanWords(text).filter((w) => w.call).map((w) => w.word))];
}
