// The request rules — header limits, Host, UTF-8, body sizes — exist once, in the Check
// decoder (src/envoy/to-request.ts). Each transport builds the CheckRequest Envoy's gRPC
// ext_authz filter would have sent and reads it there: the same request is accepted, or
// refused with the same code, whether it arrives as a gRPC Check, through the HTTP
// authorization service or on an ext_proc stream.
import test from 'ava';
import { RequestRejected } from '../src/contracts/request-rejected.js';
import type { Request } from '../src/contracts/request.js';
import { readHttpAuthzRequest } from '../src/ext-authz/http-service.js';
import { toRequestFromExtProc } from '../src/ext-proc/request.js';
import { toRequest } from '../src/envoy/to-request.js';

const limits = { maxBodyBytes: 64, maxHeaderBytes: 400, maxHeaders: 12 };

interface Sample {
  method: string;
  path: string;
  /** Headers as the client sent them, in order (Host among them). */
  headers: [string, string][];
  body?: Buffer;
}

/** The three transports' decoders on one request. */
const TRANSPORTS: Record<string, (s: Sample) => Request> = {
  'gRPC Check': (s) => {
    const headers = [
      [':authority', s.headers.find(([n]) => n.toLowerCase() === 'host')?.[1] ?? ''],
      [':method', s.method],
      [':path', s.path],
      [':scheme', 'http'],
      ...s.headers.filter(
        ([n]) => n.toLowerCase() !== 'host' || s.headers.filter(([m]) => m.toLowerCase() === 'host').length > 1,
      ),
    ];
    return toRequest(
      {
        attributes: {
          request: {
            http: {
              method: s.method,
              path: s.path,
              header_map: {
                headers: headers.map(([key, v]) => ({ key: key!.toLowerCase(), raw_value: Buffer.from(v!, 'utf8') })),
              },
              ...(s.body ? { raw_body: s.body } : {}),
            },
          },
        },
      },
      limits,
    );
  },
  'HTTP service': (s) =>
    readHttpAuthzRequest(
      {
        method: s.method,
        url: s.path,
        rawHeaders: s.headers.flatMap(([n, v]) => [n, Buffer.from(v, 'utf8').toString('latin1')]),
        body: s.body ?? Buffer.alloc(0),
        bodyBytes: s.body?.length ?? 0,
        httpVersion: '1.1',
      },
      limits,
      '',
    ),
  ext_proc: (s) =>
    toRequestFromExtProc(
      {
        headers: {
          headers: {
            headers: [
              [':authority', s.headers.find(([n]) => n.toLowerCase() === 'host')?.[1] ?? ''],
              [':method', s.method],
              [':path', s.path],
              [':scheme', 'http'],
              ...s.headers.filter(
                ([n]) => n.toLowerCase() !== 'host' || s.headers.filter(([m]) => m.toLowerCase() === 'host').length > 1,
              ),
            ].map(([key, v]) => ({ key: key!, raw_value: Buffer.from(v!, 'utf8') })),
          },
        },
        ...(s.body ? { body: s.body } : {}),
      },
      limits,
    ),
};

/** What a decoder made of the request: the rule that refused it, or what the rules read. */
function outcome(decode: (s: Sample) => Request, s: Sample): string {
  try {
    const r = decode(s);
    return `accepted host=${r.host} path=${r.path} bodyBytes=${r.bodyBytes} invalidUtf8=${r.bodyInvalidUtf8 === true} body=${JSON.stringify(r.body)}`;
  } catch (err) {
    if (err instanceof RequestRejected) return `refused ${err.code}`;
    throw err;
  }
}

const base: Sample = {
  method: 'POST',
  path: '/mcp/files',
  headers: [
    ['Host', 'files.example.com'],
    ['content-type', 'application/json'],
  ],
  body: Buffer.from('{"a":1}'),
};

const CASES: Record<string, { sample: Sample; expect: string }> = {
  'a plain request': {
    sample: base,
    expect: 'accepted host=files.example.com path=/mcp/files bodyBytes=7 invalidUtf8=false body="{\\"a\\":1}"',
  },
  'two Host headers': {
    sample: {
      ...base,
      headers: [
        ['Host', 'files.example.com'],
        ['host', 'evil.example.com'],
      ],
    },
    expect: 'refused invalid_check_request',
  },
  'more headers than limits.maxHeaders': {
    sample: {
      ...base,
      headers: [['Host', 'h'], ...Array.from({ length: 12 }, (_, i): [string, string] => [`x-h${i}`, 'v'])],
    },
    expect: 'refused headers_too_large',
  },
  'more header bytes than limits.maxHeaderBytes': {
    sample: {
      ...base,
      headers: [
        ['Host', 'h'],
        ['x-big', 'v'.repeat(400)],
      ],
    },
    expect: 'refused headers_too_large',
  },
  'a body over limits.maxBodyBytes': {
    sample: { ...base, body: Buffer.alloc(65, 0x61) },
    expect: 'accepted host=files.example.com path=/mcp/files bodyBytes=65 invalidUtf8=false body=""',
  },
  'a body that is not UTF-8': {
    sample: { ...base, body: Buffer.from([0x7b, 0xff, 0x7d]) },
    expect: `accepted host=files.example.com path=/mcp/files bodyBytes=3 invalidUtf8=true body=${JSON.stringify(Buffer.from([0x7b, 0xff, 0x7d]).toString('utf8'))}`,
  },
  'an upper-case Host': {
    sample: { ...base, headers: [['Host', 'FILES.Example.com']] },
    expect: 'accepted host=files.example.com path=/mcp/files bodyBytes=7 invalidUtf8=false body="{\\"a\\":1}"',
  },
};

for (const [name, { sample, expect }] of Object.entries(CASES)) {
  test(`${name}: every transport reads it alike (${expect.split(' ')[0]})`, (t) => {
    const got = Object.fromEntries(
      Object.entries(TRANSPORTS).map(([transport, decode]) => [transport, outcome(decode, sample)]),
    );
    t.deepEqual(got, Object.fromEntries(Object.keys(TRANSPORTS).map((transport) => [transport, expect])));
  });
}
