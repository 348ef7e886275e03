/** Quotes an identifier for SQL text. Identifiers are always quoted (I6): `weird "name";` works as is. */
export function quoteIdent(name: string): string {
  if (name.includes('\u0000')) throw new Error('identifier contains a NUL byte');
  return `"${name.replace(/"/g, '""')}"`;
}

export function quoteQualified(schema: string, name: string): string {
  return `${quoteIdent(schema)}.${quoteIdent(name)}`;
}

/**
 * A string literal for SQL text. The archiver's and restore's sessions pin
 * standard_conforming_strings on (connect.ts), so only quotes need doubling. Values from outside
 * travel as bind parameters (I6); this is for constants, for values checked against a strict form
 * first, and for SQL printed for a person to run.
 */
export function quoteLiteral(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}
