/**
 * Raw value text of chosen top-level members of a JSON object line (pure). JSON.parse would turn
 * a bigint key into a rounded JS number; the manifest holds PostgreSQL's exact text, so keys are
 * compared on the source text of the value instead. Call only on a line JSON.parse accepted.
 */
export function readTopLevelFields(line: string, wanted: ReadonlySet<string>): Map<string, string> {
  const found = new Map<string, string>();
  let i = skipSpace(line, 0);
  if (line[i] !== '{') return found;
  i = skipSpace(line, i + 1);
  while (i < line.length && line[i] !== '}') {
    const nameEnd = endOfString(line, i);
    const rawName = line.slice(i, nameEnd);
    const name = rawName.includes('\\') ? (JSON.parse(rawName) as string) : rawName.slice(1, -1);
    i = skipSpace(line, skipSpace(line, nameEnd) + 1);
    const valueEnd = endOfValue(line, i);
    if (wanted.has(name)) {
      found.set(name, line.slice(i, valueEnd));
      // Keys and timestamp usually come first: the rest of the line (often a large payload) is not scanned.
      if (found.size === wanted.size) return found;
    }
    i = skipSpace(line, valueEnd);
    if (line[i] === ',') i = skipSpace(line, i + 1);
  }
  return found;
}

function skipSpace(s: string, i: number): number {
  while (i < s.length && (s[i] === ' ' || s[i] === '\t' || s[i] === '\n' || s[i] === '\r')) i++;
  return i;
}

/** `i` at an opening quote; returns the index after the closing one. */
function endOfString(s: string, i: number): number {
  let j = i + 1;
  while (j < s.length && s[j] !== '"') j += s[j] === '\\' ? 2 : 1;
  return j + 1;
}

function endOfValue(s: string, i: number): number {
  const c = s[i];
  if (c === '"') return endOfString(s, i);
  if (c === '{' || c === '[') {
    let depth = 0;
    let j = i;
    while (j < s.length) {
      const d = s[j];
      if (d === '"') {
        j = endOfString(s, j);
        continue;
      }
      if (d === '{' || d === '[') depth++;
      else if (d === '}' || d === ']') {
        depth--;
        if (depth === 0) return j + 1;
      }
      j++;
    }
    return j;
  }
  let j = i;
  while (j < s.length && s[j] !== ',' && s[j] !== '}' && s[j] !== ' ' && s[j] !== '\n') j++;
  return j;
}

/** Pure: the line's JSON object, or undefined when the line is not one (not JSON, an array, a scalar). */
export function parseLineObject(line: string): Record<string, unknown> | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(line);
  } catch {
    return undefined;
  }
  return typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : undefined;
}
