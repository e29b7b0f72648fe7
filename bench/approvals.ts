// In-process micro-benchmark of the approval path (docs/approvals.md): the same tools/call
// through runCheck when the policy allows it, when the policy holds it and an approval is
// pending (the answer is the elicitation), and when a grant lets it through (digest, store
// lookup, one use, a signed receipt). Run: npx tsx bench/approvals.ts
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import type { ApprovalService } from '../src/approvals/approval-service.js';
import { loadConfigFile } from '../src/config/load.js';
import type { Deny } from '../src/contracts/outcome.js';
import { toRequest, type WireCheckRequest } from '../src/envoy/to-request.js';
import { silentLogger } from '../src/log/logger.js';
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
  generateKeyPairSync('ec', { namedCurve: 'prime256v1' })
    .privateKey.export({ type: 'pkcs8', format: 'pem' })
    .toString(),
);
const endpoint = (withRule: boolean) => ({
  name: withRule ? 'held' : 'plain',
  match: { pathPrefix: withRule ? '/held' : '/plain' },
  auth: { apiKey: true, oauth: false },
  data: withRule ? { approvals: [{ tools: ['delete_*'], group: 'ops', reason: 'bench', uses: 1000 }] } : {},
});
writeFileSync(
  join(dir, 'config.yaml'),
  stringify({
    apiKeys: { file: 'keys.yaml' },
    decisionLog: { enabled: false },
    approvals: {
      publicUrl: 'https://approvals.example.com',
      receiptKeyFile: 'receipt.pem',
      oidc: { issuer: 'https://idp.example.com', clientId: 'x' },
    },
    endpoints: [endpoint(false), endpoint(true)],
  }),
);
const rt = await buildRuntime(loadConfigFile(join(dir, 'config.yaml'), {}), silentLogger(), createMetricsRegistry(), {
  watch: false,
  tracing: false,
  upstreamCredentials: false,
});
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
  w: WireCheckRequest,
  n: number,
  expect: (o: unknown) => boolean,
  warm = 500,
): Promise<void> {
  for (let i = 0; i < warm; i++) await runCheck(rt, toRequest, w);
  const start = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    const { outcome } = await runCheck(rt, toRequest, w);
    if (!expect(outcome)) throw new Error(`${name}: unexpected ${JSON.stringify(outcome).slice(0, 200)}`);
  }
  const ns = Number(process.hrtime.bigint() - start) / n;
  console.log(`${name.padEnd(44)} ${(ns / 1000).toFixed(1).padStart(7)} µs/Check`);
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
const store = (rt.approvals as ApprovalService).store;
await store.decide(
  id,
  { state: 'granted', approver: 'a', decidedAt: Date.now(), validUntil: Date.now() + 3600_000 },
  1000,
  3600_000,
);
await measure(
  'held, granted (digest + use + signed receipt)',
  heldWire,
  850,
  (o) => (o as { allow: boolean }).allow,
  100,
);
await rt.close();
