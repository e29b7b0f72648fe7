// `npm run bench -- --shadow`: what a shadow policy (docs/shadow.md) costs per Check, in
// process, with the shipped policy both in force and as the shadow (the same evaluation cost
// a real candidate has). Alternating rounds of Checks through the real runtime without and
// with `shadow`, the queue drained between batches as the event loop drains it in the
// service, so a round's time holds the background evaluations too; then the Check path
// alone (the observer's push) and the background evaluation alone, per Check.
import { Registry } from 'prom-client';
import { validateConfig } from '../../src/config/load.js';
import type { CheckTrace } from '../../src/decision/context.js';
import { authorizationService } from '../../src/envoy/protos.js';
import { decodeCheckRequest } from '../../src/ext-authz/check-codec.js';
import { toRequest } from '../../src/envoy/to-request.js';
import { silentLogger } from '../../src/log/logger.js';
import { buildRuntime } from '../../src/pipeline/build-runtime.js';
import { runCheck } from '../../src/pipeline/pipeline.js';
import type { Runtime } from '../../src/pipeline/runtime.js';
import { round } from './ghz.js';

export interface ShadowResult {
  calls: number;
  rounds: number;
  /** µs per Check (wall clock, one process), median of the rounds. */
  checkUsOff: number;
  checkUsOn: number;
  /** The difference: everything shadow evaluation adds per Check, background included. */
  costUsPerCheck: number;
  /** The Check path's part: the observer queueing the trace, ns per Check. */
  queueNsPerCheck: number;
  /** The background part: one shadow evaluation and its comparison, µs per Check. */
  backgroundUsPerCheck: number;
  roundsOff: number[];
  roundsOn: number[];
}

export async function measureShadow(opts: {
  bundle: string;
  calls: number;
  rounds: number;
  log: (s: string) => void;
}): Promise<ShadowResult> {
  const base = {
    policy: { bundle: opts.bundle },
    endpoints: [{ name: 'open', match: { pathPrefix: '/mcp/open' }, auth: { apiKey: false, oauth: false } }],
    decisionLog: { enabled: false },
  };
  const build = (cfg: Record<string, unknown>) =>
    buildRuntime(
      { config: validateConfig(cfg, 'bench', '/', {}), file: undefined, baseDir: '/' },
      silentLogger(),
      new Registry(),
      { watch: false, sharedLimits: false, tracing: false },
    );
  const off = await build(base);
  const on = await build({ ...base, shadow: { bundle: opts.bundle, queueSize: 100_000 } });
  const decoded = decodeCheckRequest(sampleCheck());

  async function time(rt: Runtime, n: number): Promise<number> {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) {
      await runCheck(rt, toRequest, decoded);
      if (i % 64 === 63) await new Promise((r) => setImmediate(r));
    }
    await rt.shadow?.settled();
    return Number(process.hrtime.bigint() - t0) / n / 1000;
  }
  opts.log('shadow: warming up');
  await time(off, 5000);
  await time(on, 5000);
  const roundsOff: number[] = [];
  const roundsOn: number[] = [];
  for (let r = 0; r < opts.rounds; r++) {
    roundsOff.push(await time(off, opts.calls));
    roundsOn.push(await time(on, opts.calls));
    opts.log(
      `shadow: round ${r + 1}/${opts.rounds}: off ${round(roundsOff[r]!, 2)} µs, on ${round(roundsOn[r]!, 2)} µs`,
    );
  }

  // The Check path alone: decided() queueing traces, the drain held back until the end.
  const trace = (await runCheck(off, toRequest, decoded)) as CheckTrace;
  const shadow = on.shadow!;
  const pushes = 10_000;
  const traces = Array.from({ length: pushes }, () => ({ ...trace, shadow: undefined }));
  const p0 = process.hrtime.bigint();
  for (const t of traces) shadow.decided(t);
  const queueNs = Number(process.hrtime.bigint() - p0) / pushes;
  // The background alone: draining what was queued.
  const b0 = process.hrtime.bigint();
  await shadow.settled();
  const backgroundUs = Number(process.hrtime.bigint() - b0) / pushes / 1000;
  await Promise.all([off.close(), on.close()]);

  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  return {
    calls: opts.calls,
    rounds: opts.rounds,
    checkUsOff: round(median(roundsOff), 2),
    checkUsOn: round(median(roundsOn), 2),
    costUsPerCheck: round(median(roundsOn) - median(roundsOff), 2),
    queueNsPerCheck: round(queueNs, 0),
    backgroundUsPerCheck: round(backgroundUs, 2),
    roundsOff: roundsOff.map((x) => round(x, 2)),
    roundsOn: roundsOn.map((x) => round(x, 2)),
  };
}

export function printShadow(command: string, r: ShadowResult): void {
  process.stdout.write(
    `\n${command}\nshadow policy, µs per Check (median of ${r.rounds} rounds of ${r.calls}):\n` +
      `  off ${r.checkUsOff}   on ${r.checkUsOn}   cost ${r.costUsPerCheck} (background included)\n` +
      `  on the Check path: ${r.queueNsPerCheck} ns (queueing the trace); off it: ${r.backgroundUsPerCheck} µs (the shadow evaluation)\n`,
  );
}

function sampleCheck(): Buffer {
  const body = JSON.stringify({
    jsonrpc: '2.0',
    id: 1,
    method: 'tools/call',
    params: { name: 'search', arguments: { query: 'quarterly report', limit: 10 } },
  });
  return Buffer.from(
    authorizationService().Check!.requestSerialize({
      attributes: {
        source: { address: { socket_address: { address: '10.1.2.3', port_value: 40000 } } },
        destination: { address: { socket_address: { address: '10.0.0.1', port_value: 8080 } } },
        request: {
          http: {
            id: '1',
            method: 'POST',
            path: '/mcp/open',
            host: 'mcp.example.com',
            scheme: 'https',
            protocol: 'HTTP/2',
            headers: {
              ':authority': 'mcp.example.com',
              ':method': 'POST',
              ':path': '/mcp/open',
              'content-type': 'application/json',
              accept: 'application/json, text/event-stream',
              'content-length': String(body.length),
            },
            body,
            size: String(body.length),
          },
        },
      },
    }),
  );
}
