// Measures the body reader's per-Check cost: raw_body bytes → text → MCP view (JSON parse and
// the key/depth/Unicode checks), on a typical tools/call and on 100 KiB bodies.
//   node --import tsx scripts/measure-json-body.ts [iterations]
import { toRequest } from '../src/envoy/to-request.js';
import { parseMcp } from '../src/request/json-rpc.js';
import { checkRequest, rpc } from '../test/helpers/service.js';

const N = Number(process.argv[2] ?? 20_000);
const limits = { maxBodyBytes: 1 << 20, maxHeaderBytes: 65536, maxHeaders: 200 };

const typical = rpc(
  'tools/call',
  {
    name: 'search_files',
    arguments: {
      query: 'quarterly budget review',
      path: '/projects/finance/reports',
      include: ['*.md', '*.txt'],
      maxResults: 25,
      caseSensitive: false,
    },
    _meta: { progressToken: 'c1f0a2b4-5d6e-4f70-8a9b-0c1d2e3f4a5b' },
  },
  17,
);
const line = 'const value = compute(input, { retries: 3, label: "naïve café" }); // tab\there\n';
const fileText = line.repeat(Math.ceil((100 * 1024) / line.length)).slice(0, 100 * 1024 - 6000);
const bigString = rpc('tools/call', { name: 'write_file', arguments: { path: '/src/app.ts', content: fileText } }, 18);
const rows = Array.from({ length: 1250 }, (_, i) => ({
  id: i,
  name: `row-${i}`,
  tags: ['a', 'b'],
  score: i / 7,
  ok: i % 2 === 0,
}));
const bigStructured = rpc('tools/call', { name: 'insert_rows', arguments: { table: 'events', rows } }, 19);

function micros(n: number, fn: () => unknown): number {
  for (let i = 0; i < Math.min(n, 2000); i++) fn();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) fn();
  return Number(process.hrtime.bigint() - t0) / n / 1000;
}

function time(label: string, body: string): void {
  const wire = checkRequest({ path: '/mcp/files', rawBody: Buffer.from(body) }) as never;
  const req = toRequest(wire, limits);
  const n = Math.max(200, Math.floor((N * 300) / body.length));
  // toRequest includes the header map; the body's share is the difference to an empty body.
  const decode = micros(n, () => toRequest(wire, limits));
  const parse = micros(n, () => parseMcp(req.body, req.hasBody, req.headers));
  process.stdout.write(
    `${label.padEnd(40)} ${String(Buffer.byteLength(body)).padStart(7)} B  toRequest ${decode.toFixed(2).padStart(8)} µs  parseMcp ${parse.toFixed(2).padStart(8)} µs\n`,
  );
}

for (let round = 0; round < 3; round++) {
  time('tools/call, typical', typical);
  time('tools/call, 100 KiB string argument', bigString);
  time('tools/call, 100 KiB of small objects', bigStructured);
}
