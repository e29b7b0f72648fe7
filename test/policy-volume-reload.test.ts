// Kubernetes updates a mounted ConfigMap or Secret by swapping a "..data" symlink; the
// policy file's own name never changes. The service must reload on that swap.
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, renameSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { opaBinary } from '../src/config/paths.mjs';
import { checkRequest, rpc, startTestService } from './helpers/service.js';
import { regoDir } from './helpers/policy.js';
import { waitFor } from './helpers/wait.js';

function buildBundle(allowedTool: string, out: string): void {
  const rego = `package mcp.authz\ndefault decision := {"allow": false, "status": 403, "error": "access_denied"}\ndecision := {"allow": true} if { some c in input.mcp.calls; c.name == "${allowedTool}" }\n`;
  execFileSync(opaBinary(), ['build', '-t', 'wasm', '-e', 'mcp/authz/decision', '-o', out, '.'], {
    cwd: regoDir({ 'p.rego': rego }),
  });
}

test('a kubelet-style "..data" symlink swap reloads the policy without a restart', async (t) => {
  const mount = mkdtempSync(join(tmpdir(), 'mcp-authz-volume-'));
  const v1 = join(mount, '..2026_11_23_v1');
  const v2 = join(mount, '..2026_11_23_v2');
  mkdirSync(v1);
  mkdirSync(v2);
  buildBundle('a', join(v1, 'bundle.tar.gz'));
  buildBundle('b', join(v2, 'bundle.tar.gz'));
  symlinkSync('..2026_11_23_v1', join(mount, '..data'));
  symlinkSync(join('..data', 'bundle.tar.gz'), join(mount, 'bundle.tar.gz'));

  const svc = await startTestService({
    policy: { bundle: join(mount, 'bundle.tar.gz') },
    endpoints: [{ name: 'open', match: { pathPrefix: '/mcp/open' }, auth: { apiKey: false, oauth: false } }],
  });
  t.teardown(() => svc.stop());
  const allows = async (tool: string) =>
    Boolean(
      (await svc.check(checkRequest({ path: '/mcp/open', body: rpc('tools/call', { name: tool }) }))).ok_response,
    );
  t.true(await allows('a'));
  t.false(await allows('b'));

  // What kubelet's atomic writer does: a new "..data_tmp" symlink renamed over "..data".
  symlinkSync('..2026_11_23_v2', join(mount, '..data_tmp'));
  renameSync(join(mount, '..data_tmp'), join(mount, '..data'));

  await waitFor('the new revision to allow b', async () => allows('b'), 10_000, 0);
  t.false(await allows('a'));
});
