/**
 * Reading an HTTP answer's body with a ceiling: at most `maxBytes` are ever held, and the rest is
 * never read (the stream is cancelled, which also releases the connection). A server answering
 * with an endless body made `res.text()` hold it all in memory until the timeout (found by
 * probing a webhook receiver: 1.2 GB of RSS). Used by every caller that reads an answer: the
 * notification webhooks (only the start of an error is shown) and the legal holds API (the whole
 * answer, refused when over the ceiling).
 */

export interface BodyRead {
  /** The first `maxBytes` bytes at most. */
  bytes: Buffer;
  /** False when the body went on past `maxBytes` (the rest was not read). */
  complete: boolean;
}

export async function readBodyUpTo(res: Response, maxBytes: number): Promise<BodyRead> {
  if (res.body === null) return { bytes: Buffer.alloc(0), complete: true };
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  let complete = false;
  try {
    // One byte past the ceiling tells a body of exactly maxBytes from a longer one.
    while (size <= maxBytes) {
      const { done, value } = await reader.read();
      if (done) {
        complete = true;
        break;
      }
      chunks.push(value);
      size += value.byteLength;
    }
  } finally {
    await reader.cancel().catch(() => undefined);
  }
  const bytes = Buffer.concat(chunks);
  return complete ? { bytes, complete } : { bytes: bytes.subarray(0, maxBytes), complete };
}

/** The first `maxBytes` of a body as text (an error's start, to show). */
export async function readBodyPrefix(res: Response, maxBytes: number): Promise<string> {
  return (await readBodyUpTo(res, maxBytes)).bytes.toString('utf8');
}
