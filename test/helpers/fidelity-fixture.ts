/**
 * The fidelity table: every common PostgreSQL type with its edge values (rows 1–5 old, row 6
 * recent). Shared by the archive fidelity test and the restore round trip.
 */
import { quoteIdent, quoteQualified } from '../../src/db/quote-ident.js';

export const SCHEMA = 'Fidelity';
export const TABLE = 'Every Type';

export const FIXTURE = `
CREATE SCHEMA ${quoteIdent(SCHEMA)};
CREATE TYPE ${quoteIdent(SCHEMA)}.mood AS ENUM ('happy', 'it''s "complicated"', 'sad');
CREATE TABLE ${quoteQualified(SCHEMA, TABLE)} (
  id bigint PRIMARY KEY,
  at timestamptz NOT NULL,
  si smallint, i integer, bi bigint, num numeric, num2 numeric(12,2), r real, d double precision,
  t text, vc varchar(10), ch char(5), b boolean,
  dt date, tsn timestamp, tstz timestamptz, tm time, ttz timetz, iv interval,
  u uuid, ip inet, cd cidr, mac macaddr, by bytea,
  j json, jb jsonb,
  arr int[], tarr text[], md int[], lb int[], jarr jsonb[],
  en ${quoteIdent(SCHEMA)}.mood, rg int4range, tsr tstzrange,
  "Mixed Case" text, "select" int, "a""quote" text
);
INSERT INTO ${quoteQualified(SCHEMA, TABLE)} VALUES
(1, '2001-02-03 04:05:06.789012+00',
 -32768, -2147483648, -9223372036854775808, '123456789012345678901234567890.123456789012345678901234567890', 1234567890.12, 'NaN', 'NaN',
 (SELECT string_agg(chr(g), '') FROM generate_series(1, 31) g) || E'"\\\\/ ü日本🎉 \\u2028\\u2029 \\'', 'a"b,c\\\\', 'ab', true,
 'infinity', '4713-01-01 00:00:00 BC', '-infinity', '24:00:00', '00:00:00+1559', '1 year 2 mons -3 days 04:05:06.789012',
 'ffffffff-ffff-ffff-ffff-ffffffffffff', '2001:db8::1/64', '10.0.0.0/8', '08:00:2b:01:02:03',
 decode((SELECT string_agg(lpad(to_hex(g), 2, '0'), '') FROM generate_series(0, 255) g), 'hex'),
 E'{ "a" : 1 ,\\n\\t"a" : [ 1,2 ] ,"n":null }', 'null',
 '{1,NULL,3}', '{"a,b","c\\"d","{e}","NULL",NULL,""," sp "}', '{{1,2},{3,4}}', '[0:2]={7,8,9}', ARRAY['null'::jsonb, NULL, '{"x":null}'],
 'it''s "complicated"', '[1,10)', '[2020-01-01 00:00+00,infinity)',
 'mixed', 1, 'q'),
(2, '2001-02-03 23:59:59.999999+00',
 32767, 2147483647, 9223372036854775807, 'NaN', -0.01, 'Infinity', '-Infinity',
 repeat(E'x€"\\\\', 25000), '', 'abcde', false,
 '0044-03-15 BC', 'infinity', '1999-12-31 23:59:59.999999+00', '00:00:00', '12:00:00-1559', '-178000000 years',
 '00000000-0000-0000-0000-000000000000', '::ffff:1.2.3.4', '2001:db8::/32', 'ff:ff:ff:ff:ff:ff', '',
 'null', E'{"k": null, "arr": [null, 1.0, 1e400], "s": "\\\\u00e9 \\\\ud83c\\\\udf89"}',
 '{}', '{}', '{{{1,2},{3,4}},{{5,6},{7,8}}}', '[0:1][2:3]={{1,2},{3,4}}', '{}',
 'sad', 'empty', '(,)',
 '', 0, ''),
(3, '-infinity', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
 NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
(4, '2001-02-05 00:00:00+00',
 0, 0, 0, 'Infinity', 0, 3.4028235e38, 1.7976931348623157e308,
 'plain', 'x', 'x', NULL,
 '2000-02-29', '2000-02-29 12:00:00.000001', '2000-02-29 12:00:00.000001+00', '12:34:56.789', '12:34:56.789+05:30', '-1 days -00:00:00.000001',
 '123e4567-e89b-12d3-a456-426614174000', '192.168.0.1', '192.168.0.0/24', '00:00:00:00:00:00', '\\x00',
 '[]', '{}',
 '{NULL}', '{NULL}', '{{NULL,NULL}}', '[-5:-5]={1}', '{NULL}',
 'happy', '[-2147483648,2147483647)', '["2001-01-01 00:00:00.000001+00","2001-01-02 00:00:00+00")',
 NULL, NULL, NULL),
(5, '2001-02-05 00:00:01+00',
 1, 1, 1, '-Infinity', NULL, 1.17549435e-38, 5e-324,
 E'line\\nbreak\\rcr\\ttab', NULL, NULL, NULL,
 NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
 '"just a string"', '"null"', NULL, NULL, '[1:1][0:1]={{1,2}}', '[2:3]={5,6}', NULL, NULL, NULL, NULL, NULL, NULL, NULL),
(6, now(), 42, NULL, NULL, NULL, NULL, NULL, NULL, 'recent row: stays', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
 NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
`;

/**
 * json (not jsonb) values json_populate_record cannot give back as they were: a `\u0000` escape
 * anywhere in the value (PostgreSQL text cannot hold it: the load fails), a top-level string with
 * any escape (de-escaped and escaped again: `"\u0041"` comes back `"A"`), and whitespace before or
 * after the value (dropped). Plus values it does give back, as controls: a top-level string
 * without escapes, `\\u0000` (an escaped backslash, not a NUL). All rows are old and share one UTF
 * day. `d` is a domain over json (never converted to COPY text: parsed by PostgreSQL).
 */
export const JSON_TABLE = 'Json Edge';

export const JSON_FIXTURE = `
CREATE SCHEMA IF NOT EXISTS ${quoteIdent(SCHEMA)};
CREATE DOMAIN ${quoteIdent(SCHEMA)}.jdom AS json;
CREATE TABLE ${quoteQualified(SCHEMA, JSON_TABLE)} (id int PRIMARY KEY, at timestamptz NOT NULL, j json, k json, d ${quoteIdent(SCHEMA)}.jdom);
INSERT INTO ${quoteQualified(SCHEMA, JSON_TABLE)} VALUES
(1, '2001-02-03 01:00:00+00', '"\\u0000"', '{"k":"\\u0000"}', '"\\u0000"'),
(2, '2001-02-03 02:00:00+00', '["\\u0000"]', '{"\\u0000":1}', '{"k":"\\u0000"}'),
(3, '2001-02-03 03:00:00+00', '"a\\u0000b\\u0000"', '[{"k":["x\\u0000"]}]', '"\\u0041"'),
(4, '2001-02-03 04:00:00+00', '"\\ud83d\\ude00"', '"\\uD83D\\uDE00 \\u00e9"', '" x "'),
(5, '2001-02-03 05:00:00+00', '"\\u0041\\/\\b\\f\\u001F\\u007f\\t\\"\\\\"', ' "x" ', ' 1'),
(6, '2001-02-03 06:00:00+00', ' {"a":1} ', '[1, 2]\t', '\t"\\u0000" '),
(7, '2001-02-03 07:00:00+00', ' true', '-0 ', NULL),
(8, '2001-02-03 08:00:00+00', '"\\\\u0000"', '{"k":"\\\\u0000"}', '"\\\\u0000"'),
(9, '2001-02-03 09:00:00+00', '"plain"', '{"k":"\\u00e9\\ud83d\\ude00"}', '"plain"'),
(10, now(), '"\\u0000"', NULL, NULL);
`;
