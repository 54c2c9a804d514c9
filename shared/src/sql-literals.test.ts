import { executeArgLiteral, type SqlArg } from './sql-literals';

describe('executeArgLiteral: data only, or nothing', () => {
  test('writes integers, strings with their quotes doubled, arrays of plain tokens', () => {
    expect(executeArgLiteral(42)).toBe('42');
    expect(executeArgLiteral(-0)).toBe('0');
    expect(executeArgLiteral("it's")).toBe("'it''s'");
    expect(executeArgLiteral('')).toBe("''");
    expect(executeArgLiteral([])).toBe("'{}'");
    expect(executeArgLiteral(['0b0f6d3c-6a55-4f0e-9c61-2d3c1f8a9e77', 'a.b:c@d+e-f_g'])).toBe(
      "'{0b0f6d3c-6a55-4f0e-9c61-2d3c1f8a9e77,a.b:c@d+e-f_g}'",
    );
  });

  test('refuses what it cannot write as data: the caller then sends parameters', () => {
    const refused: unknown[] = [
      1.5,
      Number.NaN,
      1e21,
      'back\\slash',
      'nul\0byte',
      ['a,b'],
      ['a b'],
      ['"q"'],
      ['{x}'],
      ['NULL'],
      ['null'],
      [''],
      [1],
      null,
      undefined,
    ];
    for (const value of refused) expect(executeArgLiteral(value as SqlArg)).toBeUndefined();
  });
});
