// In-process micro-benchmark of the approval path (docs/approvals.md): the same tools/call
// through runCheck when the policy allows it, when the policy holds it and an approval is
// pending (the answer is the elicitation), and when a grant lets it through (digest, store
// lookup, one use, a signed receipt). Run: npx tsx bench/approvals.ts (RECEIPT_KEY=p256 for ES256 receipts)
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import type { ApprovalService } from '../src/approvals/approval-service.js';
import { loadConfigFile } from '../src/config/load.js';
import type { Deny } from '../src/contracts/outcome.js';
import { toRequest, type WireCheckRequest } from '../src/envoy/to-request.js';
import { createLogger, silentLogger } from '../src/log/logger.js';
import { createMetricsRegistry } from '../src/metrics/registry.js';
import { buildRuntime } from '../src/pipeline/build-runtime.js';
import { runCheck } from '../src/pipeline/pipeline.js';
import { keysFile, mintKey } from '../test/e2e/api-keys.js';
import { checkRequest } from '../test/helpers/service.js';

const key = mintKey({ id: 'bench', name: 'Bench', userId: 'bench', role: 'user', permissions: ['*'] });
const dir = mkdtempSync(join(tmpdir(), 'mcp-authz-bench-approvals-'));
writeFileSync(join(dir, 'keys.yaml'), keysFile([key]));
writeFileSync(
  join(dir, 'receipt.pem'),
  (process.env.RECEIPT_KEY === 'p256'
    ? generateKeyPairSync('ec', { namedCurve: 'prime256v1' })
    : generateKeyPairSync('ed25519')
  ).privateKey
    .export({ type: 'pkcs8', format: 'pem' })
    .toString(),
);
const endpoint = (withRule: boolean) => ({
  name: withRule ? 'held' : 'plain',
  match: { pathPrefix: withRule ? '/held' : '/plain' },
  auth: { apiKey: true, oauth: false },
  data: withRule
    ? { approvals: [{ tools: ['delete_*'], group: 'ops', reason: 'bench', uses: 1000, windowSeconds: 3600 }] }
    : {},
});
writeFileSync(
  join(dir, 'config.yaml'),
  stringify({
    apiKeys: { file: 'keys.yaml' },
    decisionLog: { enabled: process.env.DECISION_LOG === '1' },
    approvals: {
      publicUrl: 'https://approvals.example.com',
      receiptKeyFile: 'receipt.pem',
      oidc: { issuer: 'https://idp.example.com', clientId: 'x' },
    },
    endpoints: [endpoint(false), endpoint(true)],
  }),
);
const rt = await buildRuntime(
  loadConfigFile(join(dir, 'config.yaml'), {}),
  process.env.DECISION_LOG === '1' ? createLogger() : silentLogger(),
  createMetricsRegistry(),
  {
    watch: false,
    tracing: false,
    upstreamCredentials: false,
  },
);
const wire = (path: string, args: unknown) =>
  checkRequest({
    path,
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'tools/call',
      params: { name: 'delete_file', arguments: args },
    }),
    headers: { 'x-api-key': key.key, 'content-type': 'application/json' },
  }) as WireCheckRequest;
const args = { path: '/srv/data/report.csv', recursive: false, reason: 'cleanup', tags: ['a', 'b', 'c'] };

async function measure(
  name: string,
  w: WireCheckRequest | { next(): WireCheckRequest },
  n: number,
  expect: (o: unknown) => boolean,
  warm = 500,
): Promise<void> {
  const next = 'next' in w ? () => w.next() : () => w;
  for (let i = 0; i < warm; i++) await runCheck(rt, toRequest, next());
  const start = process.hrtime.bigint();
  const cpu = process.cpuUsage();
  for (let i = 0; i < n; i++) {
    const { outcome } = await runCheck(rt, toRequest, next());
    if (!expect(outcome)) throw new Error(`${name}: unexpected ${JSON.stringify(outcome).slice(0, 200)}`);
  }
  const ns = Number(process.hrtime.bigint() - start) / n;
  const used = process.cpuUsage(cpu);
  const cpuUs = (used.user + used.system) / n;
  // CPU time holds better than wall time on a shared machine.
  console.log(
    `${name.padEnd(46)} ${cpuUs.toFixed(1).padStart(7)} µs CPU/Check ${(ns / 1000).toFixed(1).padStart(7)} µs wall`,
  );
}

const plain = wire('/plain', args);
const heldWire = wire('/held', args);
const first = await runCheck(rt, toRequest, heldWire);
const id = ((first.outcome as Deny).extra as { approval_id: string } | undefined)?.approval_id;
if (id === undefined) throw new Error(JSON.stringify(first.outcome).slice(0, 300));
await measure('policy allows (no approval rule)', plain, 20000, (o) => (o as { allow: boolean }).allow);
await measure(
  'held, approval pending (elicitation answer)',
  heldWire,
  20000,
  (o) => (o as Deny).code === 'approval_required',
);
// A grant allows at most 1000 uses: 1000 distinct calls granted carry 20000 granted Checks.
const service = rt.approvals as ApprovalService;
const granted = Array.from({ length: 1000 }, (_, i) => wire('/held', { ...args, n: i }));
for (const w of granted) {
  const { outcome } = await runCheck(rt, toRequest, w);
  const held = ((outcome as Deny).extra as { approval_id: string } | undefined)?.approval_id;
  if (held === undefined) throw new Error(JSON.stringify(outcome).slice(0, 300));
  await service.decide((await service.store.byId(held))!, true, 'a', Date.now());
}
let g = 0;
const rotating = { next: () => granted[g++ % granted.length]! };
await measure('held, granted (digest + use + signed receipt)', rotating, 20000, (o) => (o as { allow: boolean }).allow);
await rt.close();
