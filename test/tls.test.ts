// TLS and mutual TLS on every port, with certificates made in the test (helpers/x509.ts):
// the gRPC port on both servers (the service's own on node:http2, and grpc-js) called by a
// real grpc-js client, Envoy's HTTP authorization port and the HTTP port by node:https.
// Under mTLS a client without a certificate, or with one another CA signed, is refused at
// the handshake. Reload: replacing the files gives new connections the new certificate
// while connections made before keep working on theirs; a pair that does not match, or an
// expired certificate, is refused, the previous one keeps serving, and the failure is
// logged and counted.
import test from 'ava';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, readFileSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import { connect as h2connect, type ClientHttp2Session } from 'node:http2';
import { Agent, request as httpsRequest } from 'node:https';
import { connect as tlsConnect, type PeerCertificate } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import { pino } from 'pino';
import { parse as parseYaml, stringify } from 'yaml';
import { clientConstructors } from '../src/envoy/protos.js';
import { validateConfig } from '../src/config/load.js';
import { keysFile, mintKey } from './e2e/api-keys.js';
import {
  checkRequest,
  deniedStatus,
  rpc,
  startTestService,
  type CheckResponse,
  type TestService,
} from './helpers/service.js';
import { issue, testPki, type Issued, type TestPki } from './helpers/x509.js';
import { runCli } from './helpers/cli.js';
import { waitFor } from './helpers/wait.js';

const bob = mintKey({ id: 'bob-tls', name: 'Bob', userId: 'bob', role: 'user', permissions: ['tools:search'] });
const SERVERS = ['lean', 'grpc-js'] as const;

interface TlsDir {
  dir: string;
  pki: TestPki;
  /** Replaces the certificate and key at once, as kubelet updates a mounted Secret. */
  install(cert: Issued, key?: string): void;
}

/**
 * A folder laid out as kubelet mounts a Secret: tls.crt, tls.key and ca.crt are symlinks
 * into "..data", itself a symlink to a timestamped folder; an update writes a new folder and
 * swaps "..data" with one rename, so the files change together.
 */
function tlsDir(pki = testPki()): TlsDir {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-authz-tls-'));
  let generation = 0;
  const write = (files: Record<string, string>) => {
    const version = `..${++generation}`;
    mkdirSync(join(dir, version));
    for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, version, name), text);
    symlinkSync(version, join(dir, '..data_tmp'));
    renameSync(join(dir, '..data_tmp'), join(dir, '..data'));
  };
  write({ 'tls.crt': '', 'tls.key': '', 'ca.crt': pki.ca.cert });
  for (const name of ['tls.crt', 'tls.key', 'ca.crt']) symlinkSync(join('..data', name), join(dir, name));
  const install = (cert: Issued, key = cert.key) =>
    write({ 'tls.crt': cert.cert, 'tls.key': key, 'ca.crt': pki.ca.cert });
  install(pki.server());
  return { dir, pki, install };
}

function tlsConfig(d: TlsDir, over: Record<string, unknown> = {}) {
  return { certFile: join(d.dir, 'tls.crt'), keyFile: join(d.dir, 'tls.key'), pollIntervalMs: 200, ...over };
}

function serviceConfig(extra: Record<string, unknown>) {
  return {
    apiKeys: { file: 'keys.yaml' },
    endpoints: [{ name: 'files', match: { pathPrefix: '/mcp/files' } }],
    ...extra,
  };
}

async function start(extra: Record<string, unknown>, lines: string[] = []): Promise<TestService> {
  const logger = pino({ level: 'info' }, new Writable({ write: (c, _e, cb) => (lines.push(String(c)), cb()) }));
  return startTestService(serviceConfig(extra), { files: { 'keys.yaml': keysFile([bob]) }, logger });
}

/** A grpc-js Authorization client over TLS: the CA to trust, and a client certificate or none. */
function tlsClient(port: number, ca: string, client?: Issued) {
  const { Authorization } = clientConstructors();
  const creds = client
    ? grpc.credentials.createSsl(Buffer.from(ca), Buffer.from(client.key), Buffer.from(client.cert))
    : grpc.credentials.createSsl(Buffer.from(ca));
  // The server certificate names localhost and 127.0.0.1; an IP is no TLS server name (RFC 6066).
  return new Authorization(`127.0.0.1:${port}`, creds, {
    'grpc.ssl_target_name_override': 'localhost',
  }) as grpc.Client & Record<string, any>;
}

function check(client: grpc.Client & Record<string, any>, req: Record<string, unknown>): Promise<CheckResponse> {
  return new Promise((resolve, reject) =>
    client.Check(req, { deadline: Date.now() + 30_000 }, (err: grpc.ServiceError | null, res: CheckResponse) =>
      err ? reject(err) : resolve(res),
    ),
  );
}

const searchCall = () =>
  checkRequest({
    path: '/mcp/files',
    headers: { 'x-api-key': bob.key, 'content-type': 'application/json' },
    body: rpc('tools/call', { name: 'search' }),
  });

/** The certificate a new TLS connection to the port is shown (ALPN h2, as a gRPC client asks). */
async function servedCertificate(port: number, ca: string, client?: Issued, alpn = ['h2']): Promise<PeerCertificate> {
  const socket = tlsConnect({
    host: '127.0.0.1',
    port,
    ca,
    servername: 'localhost',
    ALPNProtocols: alpn,
    ...(client ? { cert: client.cert, key: client.key } : {}),
  });
  await once(socket, 'secureConnect');
  const cert = socket.getPeerCertificate();
  socket.destroy();
  return cert;
}

/** grpc.health.v1.Health/Check over an HTTP/2 session already open: its grpc-status. */
async function healthOn(session: ClientHttp2Session): Promise<string> {
  const stream = session.request({
    ':method': 'POST',
    ':path': '/grpc.health.v1.Health/Check',
    'content-type': 'application/grpc',
    te: 'trailers',
  });
  stream.end(Buffer.alloc(5)); // one empty HealthCheckRequest
  stream.resume();
  const [trailers] = (await once(stream, 'trailers')) as [Record<string, string>];
  return trailers['grpc-status']!;
}

const metricValue = (text: string, series: string) =>
  Number(
    text
      .split('\n')
      .find((l) => l.startsWith(series + ' '))
      ?.split(' ')[1] ?? NaN,
  );

for (const grpcServer of SERVERS) {
  test(`grpcServer ${grpcServer}: TLS on the gRPC port — a client trusting the CA calls Check; a cleartext client gets nothing`, async (t) => {
    const d = tlsDir();
    const svc = await start({ grpcServer, tls: tlsConfig(d) });
    t.teardown(() => svc.stop());
    const client = tlsClient(svc.grpcPort, d.pki.ca.cert);
    t.teardown(() => client.close());
    t.truthy((await check(client, searchCall())).ok_response);
    t.is(
      deniedStatus(
        await check(
          client,
          checkRequest({
            path: '/mcp/files',
            headers: { 'x-api-key': bob.key },
            body: rpc('tools/call', { name: 'delete_repo' }),
          }),
        ),
      ),
      403,
    );
    const served = await servedCertificate(svc.grpcPort, d.pki.ca.cert);
    t.is(served.subject.CN, 'mcp-authz');
    const clear = await t.throwsAsync(svc.check(searchCall())); // the helper's client is cleartext
    t.is((clear as grpc.ServiceError).code, grpc.status.UNAVAILABLE);
  });

  test(`grpcServer ${grpcServer}: mTLS — a client certificate the client CA signed is served; none, or another CA's, is refused at the handshake`, async (t) => {
    const d = tlsDir();
    const svc = await start({ grpcServer, tls: tlsConfig(d, { clientCaFile: join(d.dir, 'ca.crt') }) });
    t.teardown(() => svc.stop());
    const envoy = d.pki.client('envoy');
    const good = tlsClient(svc.grpcPort, d.pki.ca.cert, envoy);
    t.teardown(() => good.close());
    t.truthy((await check(good, searchCall())).ok_response);

    const anonymous = tlsClient(svc.grpcPort, d.pki.ca.cert);
    t.teardown(() => anonymous.close());
    t.is(((await t.throwsAsync(check(anonymous, searchCall()))) as grpc.ServiceError).code, grpc.status.UNAVAILABLE);
    const stranger = tlsClient(svc.grpcPort, d.pki.ca.cert, testPki('another CA').client('envoy'));
    t.teardown(() => stranger.close());
    t.is(((await t.throwsAsync(check(stranger, searchCall()))) as grpc.ServiceError).code, grpc.status.UNAVAILABLE);
    if (grpcServer === 'lean') {
      const m = (await svc.http('/metrics')).text;
      t.true(
        metricValue(m, 'mcp_authz_tls_handshake_failures_total{listener="grpc"}') >= 2,
        m
          .split('\n')
          .filter((l) => l.includes('tls_'))
          .join('\n'),
      );
    }
  });

  test(`grpcServer ${grpcServer}: replaced certificate files reach new connections; a connection made before keeps working on its certificate`, async (t) => {
    const d = tlsDir();
    const lines: string[] = [];
    const svc = await start({ grpcServer, tls: tlsConfig(d, { clientCaFile: join(d.dir, 'ca.crt') }) }, lines);
    t.teardown(() => svc.stop());
    const envoy = d.pki.client('envoy');
    const before = (await servedCertificate(svc.grpcPort, d.pki.ca.cert, envoy)).fingerprint256;
    const session = h2connect(`https://127.0.0.1:${svc.grpcPort}`, {
      ca: d.pki.ca.cert,
      cert: envoy.cert,
      key: envoy.key,
      servername: 'localhost',
    });
    t.teardown(() => session.close());
    t.is(await healthOn(session), '0');

    const next = d.pki.server({ commonName: 'mcp-authz-rotated' });
    d.install(next);
    await waitFor(
      'the new certificate to be served',
      async () => (await servedCertificate(svc.grpcPort, d.pki.ca.cert, envoy)).subject.CN === 'mcp-authz-rotated',
      30_000,
      0,
    );
    t.not((await servedCertificate(svc.grpcPort, d.pki.ca.cert, envoy)).fingerprint256, before);

    t.is(await healthOn(session), '0', 'the connection made before the reload still answers');
    t.is(
      (session.socket as unknown as { getPeerCertificate(): PeerCertificate }).getPeerCertificate().fingerprint256,
      before,
      'on the certificate it was made with',
    );
    const client = tlsClient(svc.grpcPort, d.pki.ca.cert, envoy);
    t.teardown(() => client.close());
    t.truthy((await check(client, searchCall())).ok_response);
    t.true(lines.some((l) => l.includes('TLS certificate reloaded')));
  });
}

test('a reload the files cannot make (key of another certificate, then an expired certificate) keeps the previous certificate serving, logged and counted', async (t) => {
  const d = tlsDir();
  const lines: string[] = [];
  const svc = await start({ tls: tlsConfig(d) }, lines);
  t.teardown(() => svc.stop());
  const before = (await servedCertificate(svc.grpcPort, d.pki.ca.cert)).fingerprint256;
  const failures = async () =>
    metricValue((await svc.http('/metrics')).text, 'mcp_authz_tls_reloads_total{result="failure"}');
  t.is(await failures(), 0);

  d.install(d.pki.server({ commonName: 'mismatched' }), d.pki.server().key);
  await waitFor('the mismatched pair to be refused', async () => (await failures()) === 1, 30_000, 0);
  t.true(
    lines.some((l) => l.includes('TLS reload failed') && l.includes('is not the private key of the certificate')),
    lines.join(''),
  );
  t.is((await servedCertificate(svc.grpcPort, d.pki.ca.cert)).fingerprint256, before);

  const now = Date.now();
  d.install(
    issue({
      commonName: 'expired',
      sans: ['127.0.0.1'],
      issuer: d.pki.ca,
      notBefore: new Date(now - 2 * 86400_000),
      notAfter: new Date(now - 86400_000),
    }),
  );
  await waitFor('the expired certificate to be refused', async () => (await failures()) === 2, 30_000, 0);
  t.true(lines.some((l) => l.includes('the certificate expired at')));
  t.is((await servedCertificate(svc.grpcPort, d.pki.ca.cert)).fingerprint256, before);
  t.truthy((await check(tlsClient(svc.grpcPort, d.pki.ca.cert), searchCall())).ok_response, 'Checks go on');

  const good = d.pki.server({ commonName: 'good-again' });
  d.install(good);
  await waitFor(
    'a good pair to be taken',
    async () => (await servedCertificate(svc.grpcPort, d.pki.ca.cert)).subject.CN === 'good-again',
    30_000,
    0,
  );
  const m = (await svc.http('/metrics')).text;
  t.is(metricValue(m, 'mcp_authz_tls_reloads_total{result="success"}'), 2, 'the start and the good reload');
  t.is(
    metricValue(m, 'mcp_authz_tls_certificate_not_after_seconds'),
    Math.floor(new Date(good.x509.validTo).getTime() / 1000),
  );
});

function httpsGet(
  port: number,
  path: string,
  o: { ca: string; client?: Issued; agent?: Agent; method?: string; headers?: Record<string, string> },
): Promise<{ status: number; body: string; peer: PeerCertificate }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      {
        host: '127.0.0.1',
        port,
        path,
        method: o.method ?? 'GET',
        ca: o.ca,
        servername: 'localhost',
        headers: o.headers,
        ...(o.client ? { cert: o.client.cert, key: o.client.key } : {}),
        ...(o.agent ? { agent: o.agent } : {}),
      },
      (res) => {
        const peer = (res.socket as unknown as { getPeerCertificate(): PeerCertificate }).getPeerCertificate();
        let body = '';
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode!, body, peer }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

test("Envoy's HTTP authorization port under mTLS: decides for a client with a certificate, refuses one without; a reload reaches new connections while a kept-alive one goes on", async (t) => {
  const d = tlsDir();
  const svc = await start({
    listen: { extAuthzHttp: '127.0.0.1:0' },
    clientAddress: { from: 'x-envoy-external-address' },
    tls: tlsConfig(d, { clientCaFile: join(d.dir, 'ca.crt') }),
  });
  t.teardown(() => svc.stop());
  const envoy = d.pki.client('envoy');
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(() => agent.destroy());
  const ask = (key: string) =>
    httpsGet(svc.extAuthzHttpPort, '/mcp/files', {
      ca: d.pki.ca.cert,
      client: envoy,
      agent,
      headers: { 'x-api-key': key },
    });
  const first = await ask(bob.key);
  t.is(first.status, 200);
  t.is(first.peer.subject.CN, 'mcp-authz');
  t.is((await ask('mcp_wrong')).status, 401);
  await t.throwsAsync(
    httpsGet(svc.extAuthzHttpPort, '/mcp/files', { ca: d.pki.ca.cert }),
    undefined,
    'no client certificate: no answer at all',
  );
  await t.throwsAsync(
    httpsGet(svc.extAuthzHttpPort, '/mcp/files', { ca: d.pki.ca.cert, client: testPki('another CA').client('envoy') }),
  );
  const m = (await svc.http('/metrics')).text;
  t.true(metricValue(m, 'mcp_authz_tls_handshake_failures_total{listener="ext_authz_http"}') >= 2);

  d.install(d.pki.server({ commonName: 'mcp-authz-rotated' }));
  await waitFor(
    'the new certificate to be served',
    async () =>
      (await servedCertificate(svc.extAuthzHttpPort, d.pki.ca.cert, envoy, ['http/1.1'])).subject.CN ===
      'mcp-authz-rotated',
    30_000,
    0,
  );
  const kept = await ask(bob.key);
  t.is(kept.status, 200, 'the kept-alive connection still answers');
  t.is(kept.peer.fingerprint256, first.peer.fingerprint256, 'on the certificate it was made with');
  const fresh = await httpsGet(svc.extAuthzHttpPort, '/mcp/files', {
    ca: d.pki.ca.cert,
    client: envoy,
    headers: { 'x-api-key': bob.key },
  });
  t.is(fresh.status, 200);
  t.is(fresh.peer.subject.CN, 'mcp-authz-rotated');
});

test('the HTTP port serves TLS when tls.http asks (probes and /metrics over https), and stays cleartext by default', async (t) => {
  const d = tlsDir();
  const svc = await start({ tls: tlsConfig(d, { http: 'tls' }) });
  t.teardown(() => svc.stop());
  const health = await httpsGet(svc.httpPort, '/healthz', { ca: d.pki.ca.cert });
  t.is(health.status, 200);
  t.is(health.peer.subject.CN, 'mcp-authz');
  t.is((await httpsGet(svc.httpPort, '/readyz', { ca: d.pki.ca.cert })).status, 200);
  await t.throwsAsync(svc.http('/healthz'), undefined, 'cleartext to a TLS port fails');

  const plain = await start({ tls: tlsConfig(tlsDir()) });
  t.teardown(() => plain.stop());
  t.is((await plain.http('/healthz')).status, 200);
});

test("the config says what TLS needs: mtls without a client CA, a client CA no port uses, and the ports' defaults", (t) => {
  const v = (tls: Record<string, unknown>) => () =>
    validateConfig({ tls: { certFile: 'c', keyFile: 'k', ...tls } }, 'test', '/etc/mcp-authz', {});
  t.throws(v({ grpc: 'mtls' }), { message: /tls\.grpc: mtls needs tls\.clientCaFile/ });
  t.throws(v({ clientCaFile: 'ca', grpc: 'tls', extAuthzHttp: 'tls' }), {
    message: /tls\.clientCaFile: a client CA is set but no port asks for client certificates/,
  });
  t.like(v({ clientCaFile: 'ca' })().tls, {
    grpc: 'mtls',
    extAuthzHttp: 'mtls',
    http: 'off',
    certFile: '/etc/mcp-authz/c',
    clientCaFile: '/etc/mcp-authz/ca',
  });
  t.like(v({})().tls, { grpc: 'tls', extAuthzHttp: 'tls', http: 'off' });
});

test('serve --check-config loads the TLS files and says what serves what, or what is wrong with them', async (t) => {
  const d = tlsDir();
  const config = join(d.dir, 'config.yaml');
  writeFileSync(config, stringify({ tls: tlsConfig(d, { clientCaFile: join(d.dir, 'ca.crt') }), endpoints: [] }));
  const ok = await runCli(['serve', '--config', config, '--check-config']);
  t.is(ok.code, 0, ok.stderr);
  t.regex(
    ok.stdout,
    /^TLS: CN=mcp-authz \(DNS:localhost, IP Address:127\.0\.0\.1, .*\), expires \S+; gRPC mtls, HTTP off; client CA .*ca\.crt$/m,
  );
  d.install(d.pki.server(), d.pki.server().key);
  const bad = await runCli(['serve', '--config', config, '--check-config']);
  t.is(bad.code, 1);
  t.regex(bad.stderr, /^TLS: .*is not the private key of the certificate/m);
});

test('files that do not make a certificate stop start-up with what is wrong', async (t) => {
  const d = tlsDir();
  d.install(d.pki.server(), d.pki.server().key);
  await t.throwsAsync(start({ tls: tlsConfig(d) }), {
    message: /is not the private key of the certificate in .*tls\.crt/,
  });
  await t.throwsAsync(start({ tls: tlsConfig(d, { certFile: join(d.dir, 'missing.crt') }) }), {
    message: /cannot read the TLS files .*missing\.crt ENOENT/,
  });
  writeFileSync(join(d.dir, 'empty-ca.crt'), 'not a certificate\n');
  d.install(d.pki.server());
  await t.throwsAsync(start({ tls: tlsConfig(d, { clientCaFile: join(d.dir, 'empty-ca.crt') }) }), {
    message: /empty-ca\.crt: no PEM certificate/,
  });
});

test("the mTLS Envoy example is envoy.yaml plus the mcp-authz cluster's TLS, and that TLS (SNI, ALPN h2, the SAN it checks) reaches the real service", async (t) => {
  const read = (name: string) =>
    parseYaml(readFileSync(join(import.meta.dirname, '..', 'examples', 'envoy', name), 'utf8'));
  const plain = read('envoy.yaml');
  const mtls = read('envoy-mtls.yaml');
  const cluster = mtls.static_resources.clusters.find((c: { name: string }) => c.name === 'mcp-authz');
  const { transport_socket: socket, ...rest } = cluster;
  t.deepEqual(
    {
      ...mtls,
      static_resources: {
        ...mtls.static_resources,
        clusters: mtls.static_resources.clusters.map((c: { name: string }) => (c.name === 'mcp-authz' ? rest : c)),
      },
    },
    plain,
    'nothing else differs',
  );

  const ctx = socket.typed_config;
  const d = tlsDir();
  const svc = await start({ tls: tlsConfig(d, { clientCaFile: join(d.dir, 'ca.crt') }) });
  t.teardown(() => svc.stop());
  const envoy = d.pki.client('envoy');
  // A client set up as the example sets up Envoy: its SNI and ALPN, its certificate, the CA.
  const socketToService = tlsConnect({
    host: '127.0.0.1',
    port: svc.grpcPort,
    servername: ctx.sni,
    ALPNProtocols: ctx.common_tls_context.alpn_protocols,
    ca: d.pki.ca.cert,
    cert: envoy.cert,
    key: envoy.key,
    checkServerIdentity: () => undefined,
  });
  t.teardown(() => socketToService.destroy());
  await once(socketToService, 'secureConnect');
  t.true(socketToService.authorized, 'the served certificate chains to the trusted CA');
  t.is(socketToService.alpnProtocol, 'h2', 'HTTP/2 agreed by ALPN, as gRPC needs');
  const sans = (socketToService.getPeerCertificate().subjectaltname ?? '').split(', ');
  const [{ san_type: type, matcher }] = ctx.common_tls_context.validation_context.match_typed_subject_alt_names;
  t.true(sans.includes(`${type}:${matcher.exact}`), `the SAN Envoy checks is on the certificate: ${sans.join(', ')}`);
});
