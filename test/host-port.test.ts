// The one host:port reader, and the three readers built on it agreeing on the same text.
import test from 'ava';
import { portNumber, splitHostPort } from '../src/contracts/host-port.js';
import { canonicalAddress } from '../src/limits/client-address.js';
import { parseListenAddress } from '../src/server/listen-address.js';

test('host:port, [v6]:port, bare hosts and bare IPv6 split as every reader expects', (t) => {
  t.deepEqual(splitHostPort('10.1.2.3:40000'), { host: '10.1.2.3', port: '40000', exact: true });
  t.deepEqual(splitHostPort('[::1]:9191'), { host: '::1', port: '9191', exact: true });
  t.deepEqual(splitHostPort('[::1]'), { host: '::1', port: undefined, exact: true });
  t.deepEqual(splitHostPort('::1'), { host: '::1', port: undefined, exact: true });
  t.deepEqual(splitHostPort('example.com'), { host: 'example.com', port: undefined, exact: true });
  t.deepEqual(splitHostPort('[::1]x'), { host: '::1', port: undefined, exact: false });
  t.is(splitHostPort('[::1'), undefined);
  t.is(portNumber('65535'), 65535);
  t.is(portNumber('65536'), undefined);
  t.is(portNumber('0x10'), undefined);
  t.is(portNumber(''), undefined);
});

test('a listen address, a client address and a source address read the same host', (t) => {
  for (const [text, host] of [
    ['127.0.0.1:9191', '127.0.0.1'],
    ['[::1]:9191', '::1'],
  ] as const) {
    t.deepEqual(parseListenAddress(text), { kind: 'tcp', host, port: 9191 });
    t.is(canonicalAddress(text), host);
  }
  for (const bad of ['127.0.0.1', '[::1]', '[::1]x:1', 'host:99999', ':9191', 'a b:1'])
    t.throws(() => parseListenAddress(bad), { message: /expected host:port/ }, bad);
});
