// The service log as `serve` writes it: lines batched per turn of the event loop, none lost
// when the process exits right after logging.
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

function run(script: string): { lines: string[]; status: number | null } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: root,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  return { lines: r.stderr.split('\n').filter((l) => l.startsWith('{')), status: r.status };
}

test('every line logged before process.exit reaches stderr, in order', (t) => {
  const { lines, status } = run(`
    import { createLogger } from './src/log/logger.ts';
    const log = createLogger();
    for (let i = 0; i < 20000; i++) log.info({ i }, 'line');
    process.exit(3);
  `);
  t.is(status, 3);
  t.is(lines.length, 20000);
  t.deepEqual(
    lines.map((l) => JSON.parse(l).i),
    Array.from({ length: 20000 }, (_, i) => i),
  );
});

test('lines logged across turns of the event loop are all written, each a whole JSON line', (t) => {
  const { lines, status } = run(`
    import { createLogger } from './src/log/logger.ts';
    const log = createLogger();
    let n = 0;
    const tick = () => {
      for (let i = 0; i < 100; i++) log.info({ n: n++, pad: 'x'.repeat(500) }, 'line');
      if (n < 5000) setImmediate(tick);
    };
    tick();
  `);
  t.is(status, 0);
  t.is(lines.length, 5000);
  t.true(lines.every((l) => JSON.parse(l).service === 'mcp-authz'));
  t.is(JSON.parse(lines[4999]!).n, 4999);
});

test('the decision log writes, through no pino internals, the very line pino writes for the same fields', (t) => {
  // One DecisionLog on the service logger (its own line builder), one on a plain pino logger
  // with the same base and bindings (pino's serializer): the lines must be byte-identical.
  const { lines, status } = run(`
    import { pino } from 'pino';
    import { childLogger, createLogger } from './src/log/logger.ts';
    import { DecisionLog } from './src/log/decision-log.ts';
    import { approvalGrant } from './src/approvals/approval-service.ts';
    Date.now = () => 1767225600123;
    const trace = {
      decisionId: 'd-1', durationNs: 1234567n, incoming: undefined, span: undefined,
      outcome: { allow: false, kind: 'deny', status: 403, code: 'access_denied' },
      policy: { decision: 'deny', revision: 'sha256-abc', durationNs: 52000 },
      ctx: { request: { id: 'r-1' }, clientAddress: '10.0.0.1', endpoint: { name: 'files' }, principal: { id: 'k1', method: 'api_key' },
        mcp: { calls: [{ method: 'tools/call', name: 'read "x"\\u2028' }, { method: 'ping' }] }, authFailure: undefined },
    };
    const fast = new DecisionLog(childLogger(createLogger(), { worker: 3 }), { sampleRate: 1 });
    const viaPino = new DecisionLog(pino({ base: { service: 'mcp-authz' } }, pino.destination({ dest: 2, sync: true })).child({ worker: 3 }), { sampleRate: 1 });
    if (!fast.sink || viaPino.sink) process.exit(7); // the first builds its own lines, the second goes through pino
    viaPino.decided(trace);
    fast.decided(trace);
    // An allow an approval let through: its evidence, made once per grant, ends the line.
    const approved = { ...trace, outcome: { allow: true, kind: 'allow', status: 200, reason: 'allowed' },
      approval: approvalGrant('ap-1', 'ab12', 'carol "c" <carol@example.com>', 'eyJh.eyJi.c2ln') };
    viaPino.decided(approved);
    fast.decided(approved);
  `);
  t.is(status, 0);
  t.is(lines.length, 4);
  // The two writers' lines may reach stderr in either order: one pair per decision.
  const [denied, approved] = [
    lines.filter((l) => !l.includes('"approval"')),
    lines.filter((l) => l.includes('"approval"')),
  ];
  t.is(denied.length, 2);
  t.is(denied[1], denied[0]);
  t.is(approved.length, 2);
  t.is(approved[1], approved[0]);
  t.deepEqual(JSON.parse(approved[0]!).approval, {
    id: 'ap-1',
    approver: 'carol "c" <carol@example.com>',
    receipt: 'eyJh.eyJi.c2ln',
  });
  const line = JSON.parse(denied[0]!);
  t.like(line, {
    level: 30,
    time: 1767225600123,
    service: 'mcp-authz',
    worker: 3,
    log: 'decision',
    decision_id: 'd-1',
    tool: 'read "x"\u2028',
    msg: 'decision',
  });
  t.deepEqual(Object.keys(line).slice(0, 5), ['level', 'time', 'service', 'worker', 'log']);
});
