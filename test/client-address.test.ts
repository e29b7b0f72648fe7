import test from 'ava';
import fc from 'fast-check';
import {
  canonicalAddress,
  clientAddressResolver,
  fromForwardedFor,
  UNKNOWN_ADDRESS,
} from '../src/limits/client-address.js';
import type { Request } from '../src/contracts/request.js';

function req(source: string, headers: Record<string, string[]> = {}): Request {
  return { sourceAddress: source, headers } as unknown as Request;
}

test('by default the client is the CheckRequest source address, whatever headers say', (t) => {
  const addr = clientAddressResolver({ from: 'source', trustedHops: 1 });
  t.is(addr(req('10.1.2.3', { 'x-forwarded-for': ['6.6.6.6'], 'x-envoy-external-address': ['7.7.7.7'] })), '10.1.2.3');
});

test('x-forwarded-for with one trusted hop takes the rightmost entry (the one Envoy appended)', (t) => {
  const addr = clientAddressResolver({ from: 'x-forwarded-for', trustedHops: 1 });
  t.is(addr(req('10.0.0.9', { 'x-forwarded-for': ['203.0.113.7'] })), '203.0.113.7');
  t.is(addr(req('10.0.0.9', { 'x-forwarded-for': ['6.6.6.6, 203.0.113.7'] })), '203.0.113.7');
});

test('x-forwarded-for with N trusted hops takes the Nth entry from the right, across header lines', (t) => {
  const addr = clientAddressResolver({ from: 'x-forwarded-for', trustedHops: 2 });
  t.is(addr(req('10.0.0.9', { 'x-forwarded-for': ['6.6.6.6, 198.51.100.4', '10.0.0.5'] })), '198.51.100.4');
});

test('fewer x-forwarded-for entries than trusted hops falls back to the source address', (t) => {
  const addr = clientAddressResolver({ from: 'x-forwarded-for', trustedHops: 3 });
  t.is(addr(req('10.0.0.9', { 'x-forwarded-for': ['1.1.1.1, 2.2.2.2'] })), '10.0.0.9');
  t.is(addr(req('10.0.0.9')), '10.0.0.9', 'no header at all');
});

test('a non-address at the trusted position falls back to the source address', (t) => {
  const addr = clientAddressResolver({ from: 'x-forwarded-for', trustedHops: 1 });
  t.is(addr(req('10.0.0.9', { 'x-forwarded-for': ['1.1.1.1, not-an-ip'] })), '10.0.0.9');
  t.is(addr(req('10.0.0.9', { 'x-forwarded-for': ['1.1.1.1, '] })), '1.1.1.1', 'empty entries are skipped');
});

test('an untrusted client cannot choose its address by adding x-forwarded-for entries (property)', (t) => {
  const ip = fc.ipV4();
  fc.assert(
    fc.property(
      fc.array(fc.oneof(ip, fc.string()), { maxLength: 8 }),
      fc.array(ip, { minLength: 1, maxLength: 3 }),
      (spoofed, trusted) => {
        const hops = trusted.length;
        const line = [...spoofed.map((s) => s.replace(/,/g, '')), ...trusted].join(', ');
        return fromForwardedFor([line], hops) === trusted[0];
      },
    ),
  );
  t.pass();
});

test('x-envoy-external-address is used when configured, else the source', (t) => {
  const addr = clientAddressResolver({ from: 'x-envoy-external-address', trustedHops: 1 });
  t.is(addr(req('10.0.0.9', { 'x-envoy-external-address': ['203.0.113.9'] })), '203.0.113.9');
  t.is(addr(req('10.0.0.9', { 'x-envoy-external-address': ['bogus'] })), '10.0.0.9');
  t.is(addr(req('10.0.0.9')), '10.0.0.9');
});

test('one client is one key however its address is spelled', (t) => {
  t.is(canonicalAddress('::ffff:10.0.0.1'), '10.0.0.1');
  t.is(canonicalAddress('::FFFF:0a00:0001'), '10.0.0.1');
  t.is(canonicalAddress('0:0:0:0:0:0:0:1'), '::1');
  t.is(canonicalAddress('[2001:DB8::1]:443'), '2001:db8::1');
  t.is(canonicalAddress('192.0.2.1:5555'), '192.0.2.1');
  t.is(canonicalAddress('fe80::1%eth0'), 'fe80::1');
});

test('garbage is never an address, and a missing source is one shared "_unknown" client', (t) => {
  for (const bad of ['', 'x', '1.2.3', '999.1.1.1', '[::1', 'a'.repeat(100), '1.2.3.4.5'])
    t.is(canonicalAddress(bad), undefined, bad);
  t.is(clientAddressResolver({ from: 'source', trustedHops: 1 })(req('')), UNKNOWN_ADDRESS);
});
