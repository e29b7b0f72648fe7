// A fetch answer's body as text, at most `maxBytes` of it: past the bound the body is
// cancelled and the read fails, so a server that streams without end cannot fill memory.
// Used by every outbound HTTP client of the service (JWKS and discovery, token endpoints,
// the login command's discovery and code exchange).

/** The body of `res` as UTF-8 text; throws "larger than N bytes" past `maxBytes`. */
export async function readCappedText(res: Response, maxBytes: number): Promise<string> {
  if (!res.body) return '';
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > maxBytes) {
      await reader.cancel().catch(() => {});
      throw new Error(`larger than ${maxBytes} bytes`);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}
