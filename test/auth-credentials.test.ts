// The credential reader is a parser of client input: property tests besides the examples
// the integration tests cover.
import test from 'ava';
import fc from 'fast-check';
import { extractCredential, type CredentialPlan, type CredentialSettings } from '../src/auth/credentials.js';
import type { Request } from '../src/contracts/request.js';

const settings: CredentialSettings = {
  keyHeader: 'x-api-key',
  keyHeaderLabel: 'X-API-Key',
  queryParams: ['api_key', 'apikey'],
  maxTokenBytes: 16384,
};
const both: CredentialPlan = { keys: true, tokens: true, queryKeys: true, bearerIsKey: false };

function request(headers: Record<string, string[]>, query: Record<string, string[]> = {}): Request {
  return Object.assign(Object.create(null), {
    headers: Object.assign(Object.create(null), headers),
    query: Object.assign(Object.create(null), query),
  }) as Request;
}

const value = fc.string({ maxLength: 80 });

test('any header and query values: never throws, and a key is only ever what one credential carried', (t) => {
  fc.assert(
    fc.property(
      fc.option(fc.array(value, { maxLength: 3 })),
      fc.option(fc.array(value, { maxLength: 3 })),
      fc.option(fc.array(value, { maxLength: 3 })),
      (key, auth, q) => {
        const headers: Record<string, string[]> = {};
        if (key) headers['x-api-key'] = key;
        if (auth) headers.authorization = auth;
        const { credential } = extractCredential(request(headers, q ? { api_key: q } : {}), both, settings);
        if (credential.kind === 'api_key') {
          const sources = [
            ...(key ?? []).map((v) => v.trim()),
            ...(q ?? []),
            ...(auth ?? []).map((v) => v.replace(/^\s*bearer\s+/i, '').trim()),
          ];
          return sources.includes(credential.key);
        }
        return ['none', 'bad', 'token'].includes(credential.kind);
      },
    ),
  );
  t.pass();
});

test('two different non-empty keys from any two sources are always refused', (t) => {
  const key = fc.stringMatching(/^mcp_[0-9A-Za-z]{8,20}$/);
  fc.assert(
    fc.property(
      key,
      key,
      fc.constantFrom('header', 'bearer', 'query'),
      fc.constantFrom('header', 'bearer', 'query'),
      (a, b, sa, sb) => {
        fc.pre(a !== b && sa !== sb);
        const headers: Record<string, string[]> = {};
        const query: Record<string, string[]> = {};
        for (const [k, s] of [
          [a, sa],
          [b, sb],
        ] as const) {
          if (s === 'header') headers['x-api-key'] = [k];
          else if (s === 'bearer') headers.authorization = [`Bearer ${k}`];
          else query.api_key = [k];
        }
        return extractCredential(request(headers, query), both, settings).credential.kind === 'bad';
      },
    ),
  );
  t.pass();
});

test('query keys on an endpoint that does not enable them are refused whatever else is sent', (t) => {
  fc.assert(
    fc.property(value, fc.option(value), (q, header) => {
      const headers: Record<string, string[]> = header === null ? {} : { 'x-api-key': [header] };
      const r = extractCredential(request(headers, { apikey: [q] }), { ...both, queryKeys: false }, settings);
      return r.credential.kind === 'bad' && r.params.includes('apikey');
    }),
  );
  t.pass();
});
