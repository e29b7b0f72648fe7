// freePort (bench/lib/processes.ts): the ports the tests and the benchmark hand to programs that
// bind them later. A port from the kernel's ephemeral range can become any outgoing connection's
// local port before then, and a listener cannot bind a port a connection holds.
import { readFileSync } from 'node:fs';
import { connect, createServer, type Server } from 'node:net';
import test from 'ava';
import { freePort } from '../bench/lib/processes.js';

const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number) as [
  number,
  number,
];

function listen(port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const s = createServer((c) => c.resume());
    s.once('error', reject);
    s.listen(port, '127.0.0.1', () => resolve(s));
  });
}

test('a listener cannot bind the local port of an outgoing connection: why ports are not taken from the ephemeral range', async (t) => {
  const server = await listen(0);
  t.teardown(() => server.close());
  const client = connect((server.address() as { port: number }).port, '127.0.0.1');
  t.teardown(() => client.destroy());
  await new Promise<void>((resolve) => client.once('connect', resolve));
  const taken = client.localPort!;
  t.true(taken >= low && taken <= high, 'the kernel gave the connection a port of the ephemeral range');
  await t.throwsAsync(listen(taken), { code: 'EADDRINUSE' });
});

test('freePort hands out bindable ports outside the ephemeral range, never one twice', async (t) => {
  const ports: number[] = [];
  for (let i = 0; i < 50; i++) ports.push(await freePort());
  t.is(new Set(ports).size, ports.length, 'no port twice');
  for (const p of ports) t.true(p < low || p > high, `${p} is outside ${low}-${high}`);
  const s = await listen(ports[0]!);
  s.close();
  t.pass();
});
