// `npm run bench -- --scale --scale-keys-reload N`: what a reload of a keys file of N keys
// (1,000,000 by default) costs the Checks answered meanwhile. One `mcp-authz serve
// --workers 1` (so that the reload and the Checks share one event loop) is sent a steady
// stream of Checks with API keys of the file — open loop, a fixed rate, each timed from
// send to answer — first with nothing else happening, then from the moment the keys file
// is replaced (one key more, by rename) until the service logs the reload done (its log line). The
// figure is the p99 during the reload against the p99 of the steady state; every answer
// is checked (an allow for a key of the file), and the new key must authenticate after.
import { createHash } from 'node:crypto';
import { appendFileSync, copyFileSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkRequest, rpc } from '../../test/helpers/service.js';
import { round } from './ghz.js';
import { mcpAuthzCli, root } from './paths.js';
import { freePort, loadAverage, processTree, start } from './processes.js';
import { CheckClient } from './verify.js';

export interface LatencyFigures {
  checks: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

export interface KeysReloadPoint {
  keys: number;
  /** Checks sent per second, in both phases. */
  ratePerSec: number;
  steady: LatencyFigures;
  duringReload: LatencyFigures;
  /** duringReload.p99Ms / steady.p99Ms (target ≤ 2). */
  p99Ratio: number;
  /** From the file's replacement to the service's "API keys reloaded" line. */
  reloadWallSec: number;
  /** The serving process's peak RSS (VmHWM) at the end: the old and new tables held during the swap. */
  peakRssMiB: number;
  /** Answers that were not an allow (a wrong decision or an error); 0 in a valid run. */
  wrong: number;
  loadAverage: [number, number, number];
}

const RATE = 100;
const STEADY_SECONDS = 10;

/** The key `keyOf(i)` of the scale benchmark's keys files (bench/lib/scale.ts writes them). */
export async function measureKeysReload(opts: {
  keys: number;
  keysFile: string;
  keyOf: (i: number) => string;
  dir: string;
  log: (msg: string) => void;
}): Promise<KeysReloadPoint> {
  const { dir, log } = opts;
  const grpcPort = await freePort();
  const httpPort = await freePort();
  const served = join(dir, 'keys-reload.yaml');
  copyFileSync(opts.keysFile, served);
  const config = join(dir, 'config-reload.yaml');
  writeFileSync(
    config,
    [
      `listen: { grpc: "127.0.0.1:${grpcPort}", http: "127.0.0.1:${httpPort}" }`,
      'apiKeys:',
      '  file: keys-reload.yaml',
      // Polls of a file this size cost a read and a digest each: the rename is seen as a file event.
      '  pollIntervalMs: 600000',
      // Every Check here succeeds; nothing counts failures.
      'endpoints:',
      '  - name: files',
      '    match: { pathPrefix: /mcp/files }',
      '    auth: { apiKey: true, oauth: false }',
      '',
    ].join('\n'),
  );
  let reloaded: (() => void) | undefined;
  const server = start(mcpAuthzCli[0]!, [...mcpAuthzCli.slice(1), 'serve', '--workers', '1', '--config', config], {
    cwd: root,
    env: { ...process.env, NODE_ENV: 'production' },
    captureStderr: true,
  });
  // The service logs to stderr, one JSON line each.
  let tail = '';
  server.child.stderr?.on('data', (d: Buffer) => {
    const lines = (tail + d.toString()).split('\n');
    tail = lines.pop()!;
    for (const line of lines) if (line.includes('"API keys reloaded"')) reloaded?.();
  });
  const client = new CheckClient(`127.0.0.1:${grpcPort}`);
  const request = (i: number) =>
    checkRequest({
      method: 'POST',
      path: '/mcp/files',
      host: 'mcp.example.com',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'x-api-key': opts.keyOf((i * 7919) % opts.keys),
      },
      body: rpc('tools/list', {}, 3),
    });
  try {
    let alive = true;
    void server.exited.then(() => (alive = false));
    await client.waitReady(request(0), 600_000, () => alive);
    let wrong = 0;
    /** Sends RATE Checks a second until `until` resolves (or `seconds` pass); their latencies in ms. */
    const drive = async (seconds: number, until?: Promise<void>): Promise<number[]> => {
      const latencies: number[] = [];
      const pending: Promise<void>[] = [];
      let stop = false;
      void until?.then(() => (stop = true));
      const t0 = performance.now();
      for (let i = 0; !stop && (until !== undefined || i < seconds * RATE); i++) {
        const due = t0 + (i * 1000) / RATE;
        const wait = due - performance.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        if (stop) break;
        const sent = performance.now();
        pending.push(
          client.check(request(i), 30_000).then(
            (res) => {
              latencies.push(performance.now() - sent);
              if (res.ok_response === undefined) wrong++;
            },
            () => {
              wrong++;
            },
          ),
        );
      }
      await Promise.all(pending);
      return latencies;
    };
    // Warm-up, then the steady state.
    await drive(2);
    const steady = await drive(STEADY_SECONDS);
    log(`keys reload, ${opts.keys} keys: steady ${figures(steady).p99Ms} ms p99 at ${RATE} Checks/s`);

    // One key more, the file replaced by rename as editors and Kubernetes do.
    const next = join(dir, 'keys-reload.yaml.next');
    copyFileSync(served, next);
    const extraKey = 'mcp_scale_reload_extra';
    appendFileSync(
      next,
      `  - id: reload-extra\n    sha256: ${createHash('sha256').update(extraKey).digest('hex')}\n    permissions:\n      - tools:read_*\n`,
    );
    const done = new Promise<void>((resolve) => (reloaded = resolve));
    const t0 = performance.now();
    renameSync(next, served);
    const during = await drive(0, done);
    const reloadWallSec = (performance.now() - t0) / 1000;
    const after = await client.check({ ...request(0), ...extraKeyRequest(request(0), extraKey) });
    if (after.ok_response === undefined)
      throw new Error('keys reload: the added key does not authenticate after the reload');
    const peak = Math.max(
      ...processTree(server.pid).map((pid) => {
        const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
        return m ? Number(m[1]) : 0;
      }),
    );
    const point: KeysReloadPoint = {
      keys: opts.keys,
      ratePerSec: RATE,
      steady: figures(steady),
      duringReload: figures(during),
      p99Ratio: round(figures(during).p99Ms / figures(steady).p99Ms, 2),
      reloadWallSec: round(reloadWallSec, 2),
      peakRssMiB: round(peak / 1024, 0),
      wrong,
      loadAverage: loadAverage(),
    };
    log(
      `keys reload, ${opts.keys} keys: ${point.duringReload.checks} Checks during the ${point.reloadWallSec} s reload, p99 ${point.duringReload.p99Ms} ms (steady ${point.steady.p99Ms} ms, ×${point.p99Ratio}), peak RSS ${point.peakRssMiB} MiB${wrong ? `, ${wrong} WRONG answers` : ''}`,
    );
    return point;
  } finally {
    await server.stop();
  }
}

/** The same Check with another API key. */
function extraKeyRequest(req: Record<string, unknown>, key: string): Record<string, unknown> {
  const text = JSON.stringify(req).replace(/mcp_scale_[0-9a-z]{8}/, key);
  return JSON.parse(text) as Record<string, unknown>;
}

function figures(ms: number[]): LatencyFigures {
  const s = [...ms].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))] ?? NaN;
  return {
    checks: s.length,
    p50Ms: round(q(0.5), 2),
    p99Ms: round(q(0.99), 2),
    maxMs: round(s[s.length - 1] ?? NaN, 2),
  };
}
