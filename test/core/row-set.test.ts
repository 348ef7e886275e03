/** The pure operations on a batch's rows: lines as bytes, each followed by '\n'. */
import { describe, expect, it } from 'vitest';
import { joinLines, keyId, splitLines, subsetRowSet, type RowSet } from '../../src/core/row-set.js';

const LINES = ['{"id":1,"note":"Grüße"}', '{"id":2,"note":"a\\nb"}', '{"id":3}', '{"id":4,"j":null}'];

function rowSet(): RowSet {
  return {
    day: '2024-01-01',
    firstTimeOfDay: '000000000000',
    count: LINES.length,
    lines: joinLines(LINES.map((l) => Buffer.from(l))),
    xmins: ['10', '11', '12', '13'],
    keys: [['1'], ['2'], ['3'], ['4']],
    firstTs: '2024-01-01 00:00:00+00',
    lastTs: '2024-01-01 00:00:03+00',
    minKey: ['1'],
    maxKey: ['4'],
    flags: [
      { line: 1, jsonNull: [], jsonText: [2] },
      { line: 3, jsonNull: [2], jsonText: [] },
    ],
  };
}

describe('row sets', () => {
  it('joins lines each followed by a newline, and splits them back', () => {
    const body = joinLines(LINES.map((l) => Buffer.from(l)));
    expect(body.toString('utf8')).toBe(LINES.map((l) => `${l}\n`).join(''));
    expect(splitLines(body).map((b) => b.toString('utf8'))).toEqual(LINES);
    expect(joinLines([]).length).toBe(0);
    expect(splitLines(Buffer.alloc(0))).toEqual([]);
  });

  it('keyId: a one-column key is its value; keys of several columns stay apart however their values split', () => {
    expect(keyId(['42'])).toBe('42');
    expect(keyId(['a"b'])).toBe('a"b');
    expect(keyId(['a', 'b,c'])).not.toBe(keyId(['a,b', 'c']));
    expect(keyId(['a', 'b'])).toBe(keyId(['a', 'b']));
    expect(keyId(['1', '23'])).not.toBe(keyId(['12', '3']));
  });

  it('a subset keeps exactly the chosen lines, xmins and keys, and renumbers the json flags', () => {
    const subset = subsetRowSet(rowSet(), [0, 3]);
    expect(subset.count).toBe(2);
    expect(subset.lines.toString('utf8')).toBe(`${LINES[0]}\n${LINES[3]}\n`);
    expect(subset.xmins).toEqual(['10', '13']);
    expect(subset.keys).toEqual([['1'], ['4']]);
    expect(subset.flags).toEqual([{ line: 1, jsonNull: [2], jsonText: [] }]);
  });
});
