// A reload of a large keys file never stops the service answering: the file is read and
// indexed in steps that yield to the event loop, and the new registry replaces the old in
// one assignment. Proven with the reload's own step events, not with timers: Checks are
// answered between two steps of a reload in progress, each with the keys in force before
// it, and the keys of the new file only once the reload has swapped them in.
import test from 'ava';
import { createHash } from 'node:crypto';
import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { admitAuthenticatedOn, makeKey } from './helpers/auth-fixtures.js';
import { checkRequest, deniedStatus, startTestService } from './helpers/service.js';
import type { CreatedKey } from '../src/cli/keys-command.js';

const endpoints = [{ name: 'keys', match: { pathPrefix: '/mcp/keys' }, auth: { apiKey: true, oauth: false } }];
const withKey = (key: string) => checkRequest({ method: 'GET', path: '/mcp/keys', headers: { 'x-api-key': key } });

/** A keys file in the layout `keys create --append` writes: `named` first, then `filler` more keys. */
function keysText(named: CreatedKey[], filler: number): string {
  const out = ['keys:'];
  for (const k of named)
    out.push(`  - id: ${k.entry.id}`, `    sha256: ${k.entry.sha256}`, `    userId: ${k.entry.userId ?? 'u'}`);
  for (let i = 0; i < filler; i++)
    out.push(
      `  - id: filler-${i}`,
      `    sha256: ${createHash('sha256').update(`filler-${i}`).digest('hex')}`,
      `    name: filler key ${i}`,
      `    userId: user-${i % 50}`,
      '    permissions:',
      '      - tools:read_*',
    );
  return out.join('\n') + '\n';
}

test('Checks are answered while a large keys file reloads, with the old keys until the new ones are swapped in whole', async (t) => {
  const old = makeKey({ id: 'old', userId: 'alice' });
  const added = makeKey({ id: 'added', userId: 'bob' });
  let steps = 0;
  let swapped = false;
  let stepsAtSwap = -1;
  let firstStep: () => void = () => undefined;
  const reloading = new Promise<void>((resolve) => (firstStep = resolve));
  const svc = await startTestService(
    {
      apiKeys: { file: 'keys.yaml', pollIntervalMs: 60_000 },
      rateLimit: { failedAuth: { maxAttempts: 0 } },
      endpoints,
    },
    {
      files: { 'keys.yaml': keysText([old], 20_000) },
      runtime: {
        events: {
          keysReloadStep: () => {
            steps++;
            firstStep();
          },
          keysReload: (result, n) => {
            if (result === 'success' && n === 20_001 && steps > 0) {
              swapped = true;
              stepsAtSwap = steps;
            }
          },
        },
      },
    },
  );
  t.teardown(() => svc.stop());
  admitAuthenticatedOn(svc);
  t.truthy((await svc.check(withKey(old.key))).ok_response);

  // The new file drops `old` and adds `added`; replaced by rename, as editors and Kubernetes do.
  writeFileSync(join(svc.dir, 'keys.yaml.tmp'), keysText([added], 20_000));
  renameSync(join(svc.dir, 'keys.yaml.tmp'), join(svc.dir, 'keys.yaml'));
  await reloading;

  // Checks one after another until the reload is done: every one answered before the swap
  // saw the old keys only, and at least one was answered between two steps of the reload.
  let during = 0;
  while (!swapped) {
    const key = during % 2 === 0 ? old : added;
    const stepsBefore = steps;
    const res = await svc.check(withKey(key.key));
    if (swapped) break;
    during++;
    if (key === old) t.truthy(res.ok_response, `the old key is refused at step ${steps} of the reload`);
    else t.is(deniedStatus(res), 401, `the new key is accepted at step ${steps}, before the swap`);
    t.true(steps >= stepsBefore);
  }
  t.true(during >= 2, `${during} Checks answered while the reload was in progress`);
  t.true(stepsAtSwap > during, `the reload took ${stepsAtSwap} steps`);

  // After the swap: the new file's keys, whole.
  t.truthy((await svc.check(withKey(added.key))).ok_response);
  t.is(deniedStatus(await svc.check(withKey(old.key))), 401);
});
