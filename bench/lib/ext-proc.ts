// `npm run bench -- --ext-proc`: what the ext_proc service costs against the same request
// through Check. h2load and ghz cannot play Envoy's side of a Process stream (a message, then
// wait for its answer, then the next), so the load is a grpc-js client loop in this process,
// for Check as well, so both are driven the same way: `concurrency` exchanges in flight over
// `connections` channels, each one an HTTP request as Envoy's ext_proc filter sends it. The
// figure that holds best on a shared machine is the server's CPU per exchange; throughput and
// latency depend on what else runs, so the cores each side used are reported beside them.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { Registry } from 'prom-client';
import type { ApprovalService } from '../../src/approvals/approval-service.js';
import type { ProcessingRequest } from '../../src/ext-proc/wire.js';
import { clientConstructors, extProcPackageDefinition } from '../../src/envoy/protos.js';
import { requestBody, requestHeaders, responseBody, responseHeaders } from '../../test/helpers/ext-proc.js';
import { checkRequest, rpc, type CheckResponse } from '../../test/helpers/service.js';
import { round } from './ghz.js';
import { product } from './in-process.js';
import { loadAverage, machineBusySeconds, treeCpuSeconds, type Started } from './processes.js';
import { HOST, PATHS } from './scenarios.js';

import { TOOLS, VISIBLE } from './bench-tools.js';

// As bench/lib/scenarios.ts sends them; content-type and content-length come with the body.
const clientHeaders: [string, string][] = [
  ['accept', 'application/json, text/event-stream'],
  ['mcp-protocol-version', '2025-06-18'],
  ['mcp-session-id', '6f1c1a52-2b7e-4c59-9d55-0f7a3b4f2d10'],
  ['user-agent', 'claude-code/1.0.88 (bench)'],
  ['x-forwarded-proto', 'https'],
];

export interface ExtProcScenario {
  name: string;
  what: string;
  /** The Check scenario that decides the same request. */
  sameAs?: string;
  /** ext_proc: the messages Envoy sends, in order, each after the previous one's answer. */
  messages?: ProcessingRequest[];
  /** Check: the CheckRequest Envoy's ext_authz filter sends. */
  check?: Record<string, unknown>;
  /** Check: a new CheckRequest for the n-th exchange of the run (a call never sent before). */
  checkFor?: (n: number) => Record<string, unknown>;
  /**
   * checkFor's first `grant` calls are held for approval: before the clock starts each is asked
   * and granted (a grant allows at most 1000 uses, so the loop goes round that many calls).
   */
  grant?: number;
  /** Why the answers are wrong, or undefined. */
  verify(answers: Record<string, any>[]): string | undefined;
}

export function extProcScenarios(apiKey: string): ExtProcScenario[] {
  const readFile = rpc('tools/call', { name: 'read_file', arguments: { path: '/docs/README.md' } }, 7);
  const list = rpc('tools/list', {}, 3);
  const headers: [string, string][] = [...clientHeaders, ['x-api-key', apiKey]];
  const viaExtProc = (body: string, response: ProcessingRequest[], path: string = PATHS.apiKey) => [
    requestHeaders({ path, host: HOST, headers, body, source: '10.1.2.3:40000' }),
    requestBody(body),
    ...response,
  ];
  const viaCheck = (body: string, path: string = PATHS.apiKey) =>
    checkRequest({
      path,
      host: HOST,
      headers: { ...Object.fromEntries(headers), 'content-type': 'application/json', 'x-request-id': 'req-1' },
      body,
    });
  const upstreamList = JSON.stringify({ jsonrpc: '2.0', id: 3, result: { tools: TOOLS } });
  const allowed = (a: Record<string, any>[]) =>
    (a[1]?.request_body?.response?.header_mutation?.set_headers ?? []).some(
      (h: any) => h.header.key === 'x-mcp-principal',
    )
      ? undefined
      : `not allowed: ${String(JSON.stringify(a[1])).slice(0, 300)}`;
  const fiveOf = (text: string | undefined) => {
    const names = text === undefined ? [] : (JSON.parse(text).result?.tools ?? []).map((t: { name: string }) => t.name);
    return JSON.stringify(names) === JSON.stringify(VISIBLE) ? undefined : `listed ${JSON.stringify(names)}`;
  };
  const checkAllowed = (a: Record<string, any>[]) =>
    (a[0] as CheckResponse)?.ok_response ? undefined : `denied: ${String(JSON.stringify(a[0])).slice(0, 300)}`;
  return [
    {
      name: 'check_tool_allow',
      what: 'Check: X-API-Key + tools/call read_file (allowed)',
      check: viaCheck(readFile),
      verify: checkAllowed,
    },
    {
      name: 'ext_proc_tool_allow',
      what: 'ext_proc, the same request: request headers, body (decision), response headers (nothing to filter)',
      sameAs: 'check_tool_allow',
      messages: viaExtProc(readFile, [
        responseHeaders(200, [
          ['content-type', 'application/json'],
          ['content-length', '120'],
        ]),
      ]),
      verify: (a) => allowed(a) ?? (a[2]?.mode_override ? 'a body was asked for a call that lists nothing' : undefined),
    },
    {
      name: 'check_tools_list',
      what: 'Check: X-API-Key + tools/list (allowed; the list is not filtered)',
      check: viaCheck(list),
      verify: checkAllowed,
    },
    {
      name: 'ext_proc_list_json',
      what: 'ext_proc, the same request and its application/json response of 50 tools, filtered to the 5 granted',
      sameAs: 'check_tools_list',
      messages: viaExtProc(list, [
        responseHeaders(200, [
          ['content-type', 'application/json'],
          ['content-length', String(upstreamList.length)],
        ]),
        responseBody(upstreamList, true),
      ]),
      verify: (a) => allowed(a) ?? fiveOf(a[3]?.response_body?.response?.body_mutation?.body?.toString('utf8')),
    },
    {
      name: 'ext_proc_list_sse',
      what: 'the same as an SSE stream: one event in one chunk, then the end of the stream',
      sameAs: 'check_tools_list',
      messages: viaExtProc(list, [
        responseHeaders(200, [['content-type', 'text/event-stream']]),
        responseBody(`event: message\ndata: ${upstreamList}\n\n`, false),
        responseBody('', true),
      ]),
      verify: (a) =>
        allowed(a) ??
        fiveOf(a[3]?.response_body?.response?.body_mutation?.body?.toString('utf8').match(/^data: (.*)$/m)?.[1]),
    },
    // The same on an endpoint whose 50 tools are pinned (docs/pinning.md): each listed
    // definition digested and compared with its pin, what was listed recorded; the call then
    // checked against it. The list comes first: a pinned call is refused until a list was seen.
    {
      name: 'ext_proc_list_json_pinned',
      what: 'ext_proc_list_json on an endpoint with its 50 tools pinned (enforce): every definition checked, then filtered to the 5 granted',
      sameAs: 'ext_proc_list_json',
      messages: viaExtProc(
        list,
        [
          responseHeaders(200, [
            ['content-type', 'application/json'],
            ['content-length', String(upstreamList.length)],
          ]),
          responseBody(upstreamList, true),
        ],
        PATHS.pinned,
      ),
      verify: (a) => allowed(a) ?? fiveOf(a[3]?.response_body?.response?.body_mutation?.body?.toString('utf8')),
    },
    {
      name: 'check_tool_allow_pinned',
      what: 'check_tool_allow on the pinned endpoint: the tool checked against what was last listed',
      sameAs: 'check_tool_allow',
      check: viaCheck(readFile, PATHS.pinned),
      verify: checkAllowed,
    },
    {
      name: 'ext_proc_tool_allow_pinned',
      what: 'ext_proc_tool_allow on the pinned endpoint',
      sameAs: 'ext_proc_tool_allow',
      messages: viaExtProc(
        readFile,
        [
          responseHeaders(200, [
            ['content-type', 'application/json'],
            ['content-length', '120'],
          ]),
        ],
        PATHS.pinned,
      ),
      verify: (a) => allowed(a) ?? (a[2]?.mode_override ? 'a body was asked for a call that lists nothing' : undefined),
    },
    // Approvals (docs/approvals.md) on endpoints whose rule holds read_file for a person
    // (withApprovals below writes them): the same call as check_tool_allow, and its baselines.
    {
      name: 'check_approval_granted',
      what: 'check_tool_allow on an endpoint that holds read_file for approval, granted: digest, the grant looked up and one use taken, a receipt signed',
      sameAs: 'check_tool_allow',
      checkFor: (n) =>
        viaCheck(
          rpc('tools/call', { name: 'read_file', arguments: { path: `/docs/README-${n % GRANTED}.md` } }, 7),
          APPROVAL_PATHS.held,
        ),
      grant: GRANTED,
      verify: (a) => checkAllowed(a) ?? (JSON.stringify(a[0]).includes('receipt') ? undefined : 'no receipt'),
    },
    {
      name: 'check_tool_deny',
      what: 'Check: X-API-Key + tools/call admin_tool_0 (not granted: denied by the policy)',
      check: viaCheck(rpc('tools/call', { name: 'admin_tool_0', arguments: { path: '/docs/README.md' } }, 7)),
      verify: (a) => ((a[0] as CheckResponse)?.denied_response ? undefined : 'allowed'),
    },
    {
      name: 'check_approval_asked',
      what: 'a call never seen before on the holding endpoint: an approval asked for (stored), answered with the URL elicitation',
      sameAs: 'check_tool_deny',
      checkFor: (n) =>
        viaCheck(
          rpc('tools/call', { name: 'read_file', arguments: { path: `/docs/README-${n}.md` } }, 7),
          APPROVAL_PATHS.pending,
        ),
      verify: elicited,
    },
    {
      name: 'check_approval_pending',
      what: 'the same call again while its approval is pending: the same elicitation, nothing stored',
      sameAs: 'check_tool_deny',
      check: viaCheck(readFile, APPROVAL_PATHS.pending),
      verify: elicited,
    },
  ];
}

const elicited = (a: Record<string, any>[]) =>
  /approvals\/[A-Za-z0-9_-]{22}/.test(String((a[0] as CheckResponse)?.denied_response?.body))
    ? undefined
    : `not an elicitation: ${String(JSON.stringify(a[0])).slice(0, 300)}`;

/** The endpoints the approval scenarios call: read_file held (granted once, for every later call), and held (never decided). */
export const APPROVAL_PATHS = { held: '/mcp/files-held', pending: '/mcp/files-pending' } as const;
const APPROVER_GROUP = 'bench-approvers';
/** Distinct granted calls: 1000 uses each (the most a rule may allow) carry a run of up to 1M exchanges. */
const GRANTED = 1000;

/**
 * Adds approvals to the benchmark's config file: the page on this run's HTTP port (so the
 * harness can grant as an approver would), a receipt key of `receiptKey`'s type, and two
 * copies of the files endpoint whose rule holds read_file. Approvals run one worker, as the
 * ext_proc benchmark does.
 */
export function withApprovals(
  configFile: string,
  httpPort: number,
  receiptKey: 'ed25519' | 'p256' = 'ed25519',
): { sessionKey: Buffer; publicUrl: string } {
  const dir = dirname(configFile);
  const cfg = parseYaml(readFileSync(configFile, 'utf8')) as Record<string, any>;
  const key =
    receiptKey === 'ed25519'
      ? generateKeyPairSync('ed25519').privateKey
      : generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
  writeFileSync(join(dir, 'receipt.pem'), key.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  const sessionKey = randomBytes(32);
  writeFileSync(join(dir, 'session.key'), sessionKey, { mode: 0o600 });
  const publicUrl = `http://127.0.0.1:${httpPort}`;
  cfg.approvals = {
    publicUrl,
    receiptKeyFile: 'receipt.pem',
    sessionKeyFile: 'session.key',
    // Never reached: the harness signs its approver session with the session key.
    oidc: { issuer: 'http://127.0.0.1:9/', clientId: 'bench' },
    pendingSeconds: 30,
  };
  const files = (cfg.endpoints as { name: string }[]).find((e) => e.name === 'files')!;
  const rule = {
    name: 'bench',
    tools: ['read_file'],
    group: APPROVER_GROUP,
    reason: 'benchmark',
    uses: 1000,
    windowSeconds: 86400,
  };
  for (const [name, path] of [
    ['files-held', APPROVAL_PATHS.held],
    ['files-pending', APPROVAL_PATHS.pending],
  ] as const) {
    cfg.endpoints.push({ ...files, name, match: { pathPrefix: path }, data: { approvals: [rule] } });
  }
  writeFileSync(configFile, stringifyYaml(cfg));
  return { sessionKey, publicUrl };
}

/** Grants approval `id` on the page as a signed-in approver would: the session cookie, the form's CSRF token, the page's Origin. */
export async function grantOnPage(publicUrl: string, sessionKey: Buffer, id: string): Promise<void> {
  const { seal, csrfToken, APPROVER_SESSION_COOKIE } = (await import(
    new URL('../../dist/approvals/approval-page.js', import.meta.url).href
  )) as typeof import('../../src/approvals/approval-page.js');
  const sid = randomBytes(16).toString('base64url');
  const session = {
    subject: 'bench-approver',
    name: 'bench-approver',
    groups: [APPROVER_GROUP],
    sid,
    exp: Date.now() + 600_000,
  };
  const res = await fetch(`${publicUrl}/approvals/${id}`, {
    method: 'POST',
    redirect: 'manual',
    headers: {
      origin: publicUrl,
      cookie: `${APPROVER_SESSION_COOKIE}=${seal(sessionKey, session)}`,
      'content-type': 'application/x-www-form-urlencoded',
    },
    body: new URLSearchParams({ csrf: csrfToken(sessionKey, sid, id), decision: 'approve' }).toString(),
  });
  if (res.status !== 303) throw new Error(`granting ${id}: HTTP ${res.status} ${(await res.text()).slice(0, 300)}`);
}

/** The approval id an elicitation names. */
function approvalIdOf(answer: Record<string, any> | undefined): string | undefined {
  return /approvals\/([A-Za-z0-9_-]{22})/.exec(String(JSON.stringify(answer)))?.[1];
}

export interface LoopRound {
  exchanges: number;
  errors: number;
  errorSamples: string[];
  durationSec: number;
  perSec: number;
  latencyMs: { p50: number; p90: number; p99: number; max: number };
  serverCpuUsPerExchange: number;
  cores: { server: number; loadGenerator: number; other: number };
  loadAverage1: number;
}

export interface LoopOptions {
  target: string;
  connections: number;
  concurrency: number;
  durationSec: number;
  server: Started;
  /** Grants a pending approval (the approval scenarios). */
  grant?: (id: string) => Promise<void>;
}

/** One channel to the server: a Check client and an ExternalProcessor client sharing it. */
class Channel {
  readonly check: grpc.Client & Record<string, any>;
  readonly process: grpc.Client & Record<string, any>;

  constructor(target: string, n: number) {
    const { Authorization, ExternalProcessor } = clientConstructors();
    // A distinct option per channel: grpc-js gives each its own connection.
    const options = { 'grpc.primary_user_agent': `bench-${n}` };
    this.check = new Authorization(target, grpc.credentials.createInsecure(), options) as grpc.Client &
      Record<string, any>;
    this.process = new ExternalProcessor(target, grpc.credentials.createInsecure(), {
      ...options,
      channelOverride: this.check.getChannel(),
    }) as grpc.Client & Record<string, any>;
  }

  close(): void {
    this.check.close();
  }
}

/** One exchange: a Check call, or a Process stream played as Envoy plays it. Resolves with the answers. */
let sent = 0;
function exchange(ch: Channel, s: ExtProcScenario): Promise<Record<string, any>[]> {
  if (s.check || s.checkFor) {
    const request = s.checkFor ? s.checkFor(sent++) : s.check;
    return new Promise((resolve, reject) =>
      ch.check.Check(request, (err: Error | null, res: CheckResponse) => (err ? reject(err) : resolve([res]))),
    );
  }
  return new Promise((resolve, reject) => {
    const call = ch.process.Process() as grpc.ClientDuplexStream<ProcessingRequest, Record<string, any>>;
    const answers: Record<string, any>[] = [];
    const messages = s.messages!;
    let next = 0;
    // STREAMED body chunks go out without waiting, as Envoy sends them; everything else waits for its answer.
    const send = () => {
      do call.write(messages[next++]!);
      while (
        next < messages.length &&
        messages[next - 1]!.response_body &&
        !messages[next - 1]!.response_body!.end_of_stream
      );
    };
    call.on('data', (a: Record<string, any>) => {
      answers.push(a);
      if (a.immediate_response) return call.end();
      if (answers.length === next) {
        if (next < messages.length) send();
        else call.end();
      }
    });
    call.on('status', (st: grpc.StatusObject) =>
      st.code === grpc.status.OK ? resolve(answers) : reject(new Error(`gRPC ${st.code}: ${st.details}`)),
    );
    call.on('error', () => undefined);
    send();
  });
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

/** Asks for the scenario's approvals and grants them, unless an earlier round did. */
async function granted(ch: Channel, s: ExtProcScenario, grant: LoopOptions['grant']): Promise<void> {
  const one = async (i: number) => {
    const [answer] = await new Promise<Record<string, any>[]>((resolve, reject) =>
      ch.check.Check(s.checkFor!(i), (err: Error | null, res: CheckResponse) => (err ? reject(err) : resolve([res]))),
    );
    if (answer?.ok_response) return;
    const id = approvalIdOf(answer);
    if (id === undefined || grant === undefined)
      throw new Error(`${s.name}: no approval to grant (${JSON.stringify(answer).slice(0, 300)})`);
    await grant(id);
  };
  for (let i = 0; i < s.grant!; i += 8)
    await Promise.all(Array.from({ length: Math.min(8, s.grant! - i) }, (_, k) => one(i + k)));
}

/** A closed loop of `concurrency` exchanges in flight for `durationSec`; every 50th exchange's answers are verified. */
export async function closedLoop(s: ExtProcScenario, o: LoopOptions): Promise<LoopRound> {
  const channels = Array.from({ length: o.connections }, (_, i) => new Channel(o.target, i));
  try {
    if (s.grant) await granted(channels[0]!, s, o.grant);
    // Each channel connected and answering before the clock starts.
    for (const ch of channels) await exchange(ch, s);
    const latencies: number[] = [];
    let errors = 0;
    const errorSamples: string[] = [];
    const fail = (why: string) => {
      errors++;
      if (errorSamples.length < 3) errorSamples.push(why);
    };
    const cpu0 = { server: treeCpuSeconds(o.server.pid), busy: machineBusySeconds(), self: process.cpuUsage() };
    const load1 = loadAverage()[0];
    const t0 = process.hrtime.bigint();
    const end = t0 + BigInt(Math.round(o.durationSec * 1e9));
    let n = 0;
    const worker = async (ch: Channel) => {
      while (process.hrtime.bigint() < end) {
        const started = process.hrtime.bigint();
        const i = n++;
        try {
          const answers = await exchange(ch, s);
          latencies.push(Number(process.hrtime.bigint() - started) / 1e6);
          if (i % 50 === 0) {
            const wrong = s.verify(answers);
            if (wrong) fail(wrong);
          }
        } catch (err) {
          fail((err as Error).message);
        }
      }
    };
    await Promise.all(Array.from({ length: o.concurrency }, (_, i) => worker(channels[i % channels.length]!)));
    const wall = Number(process.hrtime.bigint() - t0) / 1e9;
    const self = process.cpuUsage(cpu0.self);
    const selfSec = (self.user + self.system) / 1e6;
    const serverCpu = treeCpuSeconds(o.server.pid) - cpu0.server;
    const busy = machineBusySeconds() - cpu0.busy;
    const sorted = Float64Array.from(latencies).sort();
    return {
      exchanges: latencies.length,
      errors,
      errorSamples,
      durationSec: round(wall, 2),
      perSec: round(latencies.length / wall, 0),
      latencyMs: {
        p50: round(percentile(sorted, 50), 3),
        p90: round(percentile(sorted, 90), 3),
        p99: round(percentile(sorted, 99), 3),
        max: round(percentile(sorted, 100), 3),
      },
      serverCpuUsPerExchange: round((serverCpu / Math.max(1, latencies.length)) * 1e6, 1),
      cores: {
        server: round(serverCpu / wall, 2),
        loadGenerator: round(selfSec / wall, 2),
        other: round(Math.max(0, busy - serverCpu - selfSec) / wall, 2),
      },
      loadAverage1: load1,
    };
  } finally {
    for (const ch of channels) ch.close();
  }
}

/** Blocks of exchanges per scenario, interleaved across the scenarios. */
const BLOCKS = 10;

export interface InProcessRow {
  scenario: string;
  calls: number;
  /** Decode every message, run the session (or runCheck), encode every answer: µs per exchange, the median of the interleaved blocks. */
  totalUs: number;
  /** The process's CPU time (every thread: the log writer, the garbage collector) per exchange, µs: steadier than totalUs on a busy machine. */
  cpuUs: number;
}

/**
 * mcp-authz's own work per exchange in this process, without gRPC: each message decoded from
 * its bytes, the exchange run through a session (or runCheck for Check), each answer encoded.
 * The compiled dist/ modules, as `serve` runs them.
 */
export async function inProcess(
  configFile: string,
  list: ExtProcScenario[],
  calls: number,
  log: (m: string) => void,
): Promise<InProcessRow[]> {
  const p = await product();
  const { ExtProcSession } = (await import(
    new URL('../../dist/ext-proc/session.js', import.meta.url).href
  )) as typeof import('../../src/ext-proc/session.js');
  const rt = await p.buildRuntime(p.loadConfigFile(configFile), p.createLogger(), new Registry(), {
    watch: false,
    sharedLimits: false,
  });
  const check = p.authorizationService().Check!;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const ext = (await import('@grpc/grpc-js')).loadPackageDefinition(extProcPackageDefinition()) as any;
  const def = ext.envoy.service.ext_proc.v3.ExternalProcessor.service.Process;
  const rows: InProcessRow[] = [];
  const ready: { s: ExtProcScenario; loop: (n: number) => Promise<void>; wall: number[]; cpu: number[] }[] = [];
  try {
    for (const s of list) {
      // An exchange's answers as the service sends them (bytes); read() decodes them as Envoy
      // would, outside the timed loop: decoding the answer is Envoy's work, not the service's.
      let one: () => Promise<Buffer[]>;
      let read: (answers: Buffer[]) => Record<string, any>[];
      if (s.check || s.checkFor) {
        // The requests serialized before the clock starts, as check_tool_allow's one request is:
        // building and encoding a CheckRequest is the client's work, not the service's. A
        // scenario with grants goes round its `grant` calls; another needs one per exchange.
        const count = s.check ? 1 : s.grant || 1 + Math.min(calls, 3000) + calls + BLOCKS;
        const wires = Array.from({ length: count }, (_, i) => check.requestSerialize(s.check ?? s.checkFor!(i)));
        let n = 0;
        one = async () => {
          const wire = wires[n++ % wires.length]!;
          const trace = await p.runCheck(rt, p.toRequest, check.requestDeserialize(wire));
          const bytes =
            p.encodeCheckResponse(trace.outcome) ?? check.responseSerialize(p.toCheckResponse(trace.outcome));
          return [bytes];
        };
        read = (answers) => answers.map((b) => check.responseDeserialize(b));
      } else {
        const wires: Buffer[] = s.messages!.map((m) => def.requestSerialize(m));
        one = async () => {
          const session = new ExtProcSession(rt);
          const answers: Buffer[] = [];
          for (const w of wires) {
            const step = await session.onMessage(def.requestDeserialize(w));
            for (const a of step.send) answers.push(def.responseSerialize(a));
          }
          await session.onEnd();
          return answers;
        };
        read = (answers) => answers.map((b) => def.responseDeserialize(b));
        // Verified once on decoded answers, as a client would read them.
        const wrong = s.verify(read(await one()));
        if (wrong) throw new Error(`${s.name}: ${wrong}`);
      }
      // The approvals granted as the page grants them, in this process's store.
      for (let i = 0; i < (s.grant ?? 0); i++) {
        const [answer] = read(await one());
        const id = approvalIdOf(answer);
        if (id === undefined) throw new Error(`${s.name}: no approval to grant`);
        const service = rt.approvals as ApprovalService;
        const decided = await service.decide((await service.store.byId(id))!, true, 'bench-approver', Date.now());
        if (!decided) throw new Error(`${s.name}: approval ${id} was not pending`);
      }
      if (s.check || s.checkFor) {
        const wrong = s.verify(read(await one()));
        if (wrong) throw new Error(`${s.name}: ${wrong}`);
      }
      const loop = async (n: number) => {
        for (let i = 0; i < n; i++) {
          await one();
          if (i % 64 === 63) await new Promise((r) => setImmediate(r));
        }
      };
      log(`in-process ${s.name}: warm-up`);
      await loop(Math.min(calls, 3000));
      ready.push({ s, loop, wall: [], cpu: [] });
    }
    // The scenarios interleaved in blocks, so that a load that comes and goes on a shared
    // machine weighs on each alike: the median block per scenario.
    log(`in-process: ${calls} exchanges per scenario in ${BLOCKS} interleaved blocks`);
    const perBlock = Math.max(1, Math.round(calls / BLOCKS));
    for (let b = 0; b < BLOCKS; b++) {
      for (const r of ready) {
        const t0 = process.hrtime.bigint();
        const cpu0 = process.cpuUsage();
        await r.loop(perBlock);
        const cpu = process.cpuUsage(cpu0);
        r.wall.push(Number(process.hrtime.bigint() - t0) / perBlock / 1000);
        r.cpu.push((cpu.user + cpu.system) / perBlock);
      }
    }
    for (const r of ready) {
      const mid = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
      rows.push({
        scenario: r.s.name,
        calls: perBlock * BLOCKS,
        totalUs: round(mid(r.wall), 1),
        cpuUs: round(mid(r.cpu), 1),
      });
    }
  } finally {
    await rt.close();
  }
  return rows;
}

export interface ExtProcRun {
  scenario: string;
  what: string;
  sameAs?: string;
  rounds: LoopRound[];
  /** The median round by throughput. */
  median: LoopRound;
}

/** The median over rounds of (server CPU per exchange ÷ the baseline's in the same round): what load changes between rounds cancels. */
export function roundRatio(run: ExtProcRun, base: ExtProcRun): number {
  const ratios = run.rounds
    .map((x, i) => x.serverCpuUsPerExchange / (base.rounds[i]?.serverCpuUsPerExchange ?? NaN))
    .filter((x) => Number.isFinite(x))
    .sort((a, b) => a - b);
  if (ratios.length === 0) return NaN;
  const mid = ratios.length >> 1;
  return ratios.length % 2 ? ratios[mid]! : (ratios[mid - 1]! + ratios[mid]!) / 2;
}

export function printExtProc(
  command: string,
  runs: ExtProcRun[],
  inProc: InProcessRow[],
  settings: { connections: number; concurrency: number; durationSec: number; rounds: number },
): void {
  const w = (line: string) => process.stdout.write(line + '\n');
  w('');
  w(`${command}`);
  w(
    `ext_proc against Check, the same requests; grpc-js client loop in the benchmark process (${settings.connections} channels, ${settings.concurrency} in flight), ${settings.rounds} interleaved rounds of ${settings.durationSec}s, median round`,
  );
  w('');
  w(
    `${'scenario'.padEnd(22)} ${'exch/s'.padStart(7)} ${'p50 ms'.padStart(7)} ${'p99 ms'.padStart(7)} ${'server µs/exch'.padStart(15)} ${'vs Check'.padStart(9)} ${'in-proc µs'.padStart(11)} ${'cores srv/lg/other'.padStart(19)} errors`,
  );
  for (const r of runs) {
    const m = r.median;
    const base = r.sameAs ? runs.find((x) => x.scenario === r.sameAs)?.median : undefined;
    const vs = base ? `×${roundRatio(r, runs.find((x) => x.scenario === r.sameAs)!).toFixed(2)}` : '';
    const ip = inProc.find((x) => x.scenario === r.scenario)?.totalUs;
    w(
      `${r.scenario.padEnd(22)} ${String(m.perSec).padStart(7)} ${m.latencyMs.p50.toFixed(2).padStart(7)} ${m.latencyMs.p99.toFixed(2).padStart(7)} ${m.serverCpuUsPerExchange.toFixed(0).padStart(15)} ${vs.padStart(9)} ${(ip?.toFixed(1) ?? '').padStart(11)} ${`${m.cores.server}/${m.cores.loadGenerator}/${m.cores.other}`.padStart(19)} ${r.rounds.reduce((n, x) => n + x.errors, 0)}`,
    );
  }
  w('');
  w(
    "server µs/exch: the mcp-authz process's CPU per exchange (one worker); vs Check: that over the scenario it is compared with (the same request without the extra step), the median of the per-round ratios (each round runs both back to back).",
  );
  w('in-proc µs: decode, session or runCheck, encode, in one process without gRPC.');
}
