/**
 * JSON lines to COPY text (copy-text.ts): exact text per value kind, and `undefined` — the
 * json_populate_record path — for everything PostgreSQL could read differently. The round trip
 * against PostgreSQL itself is in restore-batches.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { convertToCopyText, textCheckedKey, type ColumnKind, type JsonRules, type SourceLine } from '../../src/restore/copy-text.js';

const noRules: JsonRules = { jsonNull: [], jsonText: [] };

function source(...lines: string[]): SourceLine[] {
  const raw = Buffer.from(lines.map((l) => l + '\n').join(''));
  const out: SourceLine[] = [];
  let start = 0;
  for (const l of lines) {
    const end = start + Buffer.byteLength(l);
    out.push({ raw, start, end });
    start = end + 1;
  }
  return out;
}

function convert(kinds: Record<string, ColumnKind>, lines: string[], rules = noRules): string | undefined {
  return convertToCopyText(source(...lines), Object.entries(kinds).map(([name, kind]) => ({ name, kind })), rules)?.copy.toString('utf8');
}

describe('convertToCopyText', () => {
  it('decodes JSON strings and escapes them for COPY; keeps number, literal and json text as written', () => {
    expect(convert({ t: 'scalar', i: 'scalar', b: 'scalar', j: 'jsonb' }, ['{"t":"a\\"b\\\\c\\n\\t\\r\\u00e9\\ud83c\\udf89\\/\\u001f","i":-9223372036854775808,"b":true,"j":{"k": [1.50, "x\\\\y"]}}'])).toBe(
      '0\ta"b\\\\c\\n\\t\\ré🎉/\u001f\t-9223372036854775808\ttrue\t{"k": [1.50, "x\\\\\\\\y"]}\n',
    );
  });

  it('writes JSON arrays as array literals of quoted elements, several dimensions and NULL elements included', () => {
    expect(convert({ a: 'array' }, ['{"a":[["x\\"y","b\\\\c"],[null,"NULL"]]}', '{"a":[]}', '{"a":"[0:1]={7,8}"}', '{"a":null}', '{}'])).toBe(
      '0\t{{"x\\\\"y","b\\\\\\\\c"},{NULL,"NULL"}}\n1\t{}\n2\t[0:1]={7,8}\n3\t\\N\n4\t\\N\n',
    );
  });

  it('applies the two json rules: JSON null in a json column, and json text written as a string', () => {
    const rules = { jsonNull: [{ line: 0, columns: ['j'] }], jsonText: [{ line: 1, columns: ['j'] }] };
    expect(convert({ j: 'json' }, ['{"j":null}', '{"j":"{ \\"a\\" :\\n1 }"}'], rules)).toBe('0\tnull\n1\t{ "a" :\\n1 }\n');
  });

  it.each([
    ['a JSON string in a json column (json_populate_record re-escapes it)', { j: 'json' }, '{"j":"s"}'],
    ['a column of another kind', { c: 'other' }, '{"c":1}'],
    ['leaves at different depths', { a: 'array' }, '{"a":[1,[2]]}'],
    ['an empty inner array', { a: 'array' }, '{"a":[[]]}'],
    ['sub-arrays of different lengths', { a: 'array' }, '{"a":[[1,2],[3]]}'],
    ['an object element', { a: 'array' }, '{"a":[{"x":1}]}'],
    ['a number for an array', { a: 'array' }, '{"a":5}'],
    ['an object for a scalar', { t: 'scalar' }, '{"t":{"x":1}}'],
    ['\\u0000', { t: 'scalar' }, '{"t":"a\\u0000"}'],
    ['a lone surrogate', { t: 'scalar' }, '{"t":"\\ud800x"}'],
    ['an unknown escape', { t: 'scalar' }, '{"t":"\\x"}'],
    ['a raw control character', { t: 'scalar' }, '{"t":"a\tb"}'],
    ['a repeated key', { t: 'scalar' }, '{"t":"a","t":"b"}'],
    ['an unknown key', { t: 'scalar' }, '{"t":"a","u":1}'],
    ['a number JSON does not allow', { i: 'scalar' }, '{"i":01}'],
    ['text after the object', { i: 'scalar' }, '{"i":1} x'],
    ['a member name with a malformed escape (found in review: it threw)', { t: 'scalar' }, '{"\\x":1}'],
  ] as const)('leaves %s to json_populate_record', (_what, kinds, line) => {
    expect(convert(kinds as Record<string, ColumnKind>, ['{"' + Object.keys(kinds)[0] + '":null}', line])).toBeUndefined();
  });

  it('matches keys to the manifest as text only where that proves key::text equal', () => {
    const columns = [
      { name: 'id', type: 'bigint' },
      { name: 'v', type: 'text' },
    ];
    const key = textCheckedKey(columns, ['id'])!;
    const kinds = columns.map((c) => ({ name: c.name, kind: 'scalar' as const }));
    const check = (lines: string[], keys: string[][]) => convertToCopyText(source(...lines), kinds, noRules, { key, keys })?.keysMatch;
    expect(check(['{"id":1,"v":"a"}', '{"id":-20,"v":"b"}'], [['1'], ['-20']])).toBe(true);
    expect(check(['{"id":1,"v":"a"}', '{"id":2,"v":"b"}'], [['1'], ['3']])).toBe(false);
    expect(check(['{"id":-0,"v":"a"}'], [['-0']])).toBe(false);
    expect(check(['{"id":"1","v":"a"}'], [['1']])).toBe(false);
    expect(textCheckedKey([{ name: 'k', type: 'timestamp with time zone' }], ['k'])).toBeUndefined();
    expect(textCheckedKey(columns, ['v'])).toEqual([{ index: 1, integer: false }]);
  });

  it('leaves the line numbers out for a COPY straight into the target', () => {
    expect(convertToCopyText(source('{"a":1,"b":"x"}'), [{ name: 'a', kind: 'scalar' }, { name: 'b', kind: 'scalar' }], noRules, undefined, false)?.copy.toString()).toBe('1\tx\n');
  });
});
