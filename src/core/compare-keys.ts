/**
 * Object keys in the order S3 lists them: by the bytes of their UTF-8 encoding. JavaScript's `<`
 * compares UTF-16 code units, which disagrees for characters above U+FFFF against U+E000–U+FFFF,
 * so every place that relies on listing order compares with this instead.
 */
export function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}
