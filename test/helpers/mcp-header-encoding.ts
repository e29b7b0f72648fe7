// How an MCP 2026-07-28 client writes a value into Mcp-Name or Mcp-Param-{Name} (the spec's
// "Value Encoding"), written from the spec for the tests, apart from the service's decoder:
// plain when the value is visible ASCII (space and tab inside) and does not look like the
// sentinel, else `=?base64?<Base64 of its UTF-8>?=`.
export function encodeHeaderValue(value: string): string {
  let plain = !(value.startsWith('=?base64?') && value.endsWith('?='));
  for (let i = 0; i < value.length && plain; i++) {
    const c = value.charCodeAt(i);
    plain = (c >= 0x20 && c <= 0x7e) || c === 0x09;
  }
  if (plain && value.length > 0 && /^[ \t]|[ \t]$/.test(value)) plain = false;
  return plain ? value : `=?base64?${Buffer.from(value, 'utf8').toString('base64')}?=`;
}

/** How a client writes an argument value before encoding: string as-is, integer in decimal, boolean lower-case. */
export function headerText(v: string | number | boolean): string {
  return typeof v === 'string' ? v : String(v);
}
