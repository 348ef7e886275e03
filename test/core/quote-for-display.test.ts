import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { quoteForDisplay, quoteListForDisplay, quoteShellArg } from '../../src/core/quote-for-display.js';

describe('quoteForDisplay', () => {
  it.each([
    ['abc', '"abc"'],
    ['', '""'],
    [' a ', '" a "'],
    ['a, b', '"a, b"'],
    ['42', '"42"'],
    ['say "hi"', '"say \\"hi\\""'],
    ['back\\slash', '"back\\\\slash"'],
    ['tab\there', '"tab\\there"'],
    ['line\nbreak', '"line\\nbreak"'],
    ['nul\u0000', '"nul\\u0000"'],
    ['bell\u0007', '"bell\\u0007"'],
    ['del\u007f', '"del\\u007f"'],
    ['c1\u0085', '"c1\\u0085"'],
    ['zero\u200bwidth', '"zero\\u200bwidth"'],
    ['\ufeffbom', '"\\ufeffbom"'],
    ['bidi\u202eevil', '"bidi\\u202eevil"'],
    ['nb\u00a0space', '"nb\\u00a0space"'],
    ['line\u2028sep', '"line\\u2028sep"'],
    ['tag\u{e0041}', '"tag\\udb40\\udc41"'],
    ['lone\ud800', '"lone\\ud800"'],
    ['café ünïcode 日本 🎉', '"café ünïcode 日本 🎉"'],
  ])('quotes the string %j as %s', (value, shown) => {
    expect(quoteForDisplay(value)).toBe(shown);
  });

  it('writes numbers as they are and NULL for null', () => {
    expect(quoteForDisplay(42)).toBe('42');
    expect(quoteForDisplay(-1.5)).toBe('-1.5');
    expect(quoteForDisplay(9007199254740993n)).toBe('9007199254740993');
    expect(quoteForDisplay(null)).toBe('NULL');
  });

  it('gives a JSON string that parses back to the value, with no raw control, format or separator character in it', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), (s) => {
        const shown = quoteForDisplay(s);
        expect(JSON.parse(shown)).toBe(s);
        expect(shown).not.toMatch(/[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]|(?! )\p{Zs}/u);
      }),
      { seed: 20260512, numRuns: 1000 },
    );
  });
});

describe('quoteListForDisplay', () => {
  it('keeps values that hold commas, spaces or nothing apart', () => {
    expect(quoteListForDisplay(['a, b', ''])).toBe('("a, b", "")');
    expect(quoteListForDisplay(['a', ' b', ''])).toBe('("a", " b", "")');
    expect(quoteListForDisplay([7, null, 'x'])).toBe('(7, NULL, "x")');
    expect(quoteListForDisplay([])).toBe('()');
  });
});

describe('quoteShellArg', () => {
  it('leaves plain words bare and single-quotes anything a shell would read otherwise', () => {
    expect(quoteShellArg('public.events_2024')).toBe('public.events_2024');
    expect(quoteShellArg('a b')).toBe("'a b'");
    expect(quoteShellArg('x;rm')).toBe("'x;rm'");
    expect(quoteShellArg('"a"."b"')).toBe(`'"a"."b"'`);
    expect(quoteShellArg("o'brien")).toBe(`'o'\\''brien'`);
    expect(quoteShellArg('')).toBe("''");
    expect(quoteShellArg('$HOME')).toBe("'$HOME'");
  });
});
