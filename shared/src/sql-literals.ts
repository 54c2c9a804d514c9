/**
 * SQL literals for statements sent without parameters (simple query protocol): `withTransaction`'s
 * `finishWith` and the `EXECUTE` of `beginWith`. Only values whose text can carry nothing but data:
 * integers; strings quoted with their quotes doubled (and none with a backslash, whose meaning depends on
 * `standard_conforming_strings`, or a NUL); arrays of plain tokens (ids: letters, digits, `_.:@+-`). Anything else
 * is refused, never escaped into shape.
 */
export type SqlArg = number | string | readonly string[];

const PLAIN_TOKEN = /^[0-9A-Za-z_.:@+-]+$/;

/** A bigint[] literal; throws on anything but integers. */
export function bigintArrayLiteral(values: readonly string[]): string {
  for (const v of values) if (!/^-?\d{1,19}$/.test(v)) throw new Error(`not a bigint: ${JSON.stringify(v)}`);
  return `'{${values.join(',')}}'::bigint[]`;
}

/** The literal of one argument of an EXECUTE (its type is the prepared statement's), or undefined if unsafe. */
export function executeArgLiteral(value: SqlArg): string | undefined {
  if (typeof value === 'number') return Number.isSafeInteger(value) ? String(value) : undefined;
  if (typeof value === 'string') {
    // A NUL would end the query text early (a protocol error, not the value's own error).
    return /[\\\0]/.test(value) ? undefined : `'${value.replaceAll("'", "''")}'`;
  }
  if (!Array.isArray(value)) return undefined;
  // An unquoted NULL in an array literal is a null element, not the text.
  const plain = value.every((v) => typeof v === 'string' && PLAIN_TOKEN.test(v) && v.toLowerCase() !== 'null');
  return plain ? `'{${value.join(',')}}'` : undefined;
}
