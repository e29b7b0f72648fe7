// A remote bundle under `serve --workers N`: the primary polls the bundle service once for
// all workers and activates a new bundle in two steps, so no worker decides with a policy
// its siblings do not have. Prepare: every worker unpacks, verifies the signature and builds
// the engine, and answers; activate: only when every worker built it does each swap it in
// (one IPC message each, a swap of one reference). One worker refusing it discards it
// everywhere, and the previous policy stays on all. A worker that starts later (a replaced
// one) is handed the bundle in force and activates it at once.
import cluster, { type Worker } from 'node:cluster';
import type { LoadedConfig } from '../config/load.js';
import { RemoteService } from '../config/remote-service.js';
import { packageVersion } from '../config/version.js';
import { instanceLabels } from '../log/decision-log-shipper.js';
import type { Logger } from '../log/logger.js';
import type { ServiceEvents } from '../metrics/hooks.js';
import { BundlePoller } from '../policy/bundle-poller.js';
import type { LoadedPolicy, PolicySource } from '../policy/policy-source.js';
import { StatusReporter } from '../policy/status-reporter.js';
import type { BundleMessage } from './cluster-messages.js';

const PREPARE_TIMEOUT_MS = 120_000;

interface Round {
  seq: number;
  step: 'prepare' | 'activate';
  waiting: Set<number>;
  errors: string[];
  revision: string | undefined;
  done: () => void;
}

/** The primary's side: polls, prepares on every worker, then activates on every worker. */
export class BundleDistributor {
  private readonly poller: BundlePoller;
  private readonly status: StatusReporter | undefined;
  /** Workers listening for bundles (they asked with bundle-sync). */
  private readonly members = new Set<number>();
  private seq = 0;
  private round: Round | undefined;
  /** The bytes in force everywhere, for workers that start later. */
  private active: { bytes: Buffer; origin: string } | undefined;

  constructor(
    loaded: LoadedConfig,
    private readonly logger: Logger,
  ) {
    const { config } = loaded;
    const [name, bundle] = Object.entries(config.bundles)[0]!;
    const service = new RemoteService(bundle.service, config.services[bundle.service]!);
    this.status = config.status
      ? new StatusReporter({
          service: new RemoteService(config.status.service, config.services[config.status.service]!),
          labels: instanceLabels(packageVersion(), config.labels),
          logger,
          decisionLogs: config.decision_logs !== undefined,
        })
      : undefined;
    this.poller = new BundlePoller({
      name,
      service,
      config: bundle,
      logger,
      // The primary has no registry of its own: every worker counts the requests (the metrics aggregate them by max).
      events: { bundleRequest: (_bundle, result) => this.broadcast({ type: 'mcp-authz:bundle-request', result }) },
      activate: (bytes, origin) => this.distribute(bytes, origin),
      ...(this.status ? { onStatus: (s) => this.status!.update(s) } : {}),
    });
  }

  start(): void {
    void this.poller.once().then(() => this.poller.start());
  }

  async close(): Promise<void> {
    this.status?.close();
    await this.poller.close();
  }

  heard(w: Worker, m: BundleMessage): void {
    if (m.type === 'mcp-authz:bundle-sync') {
      this.members.add(w.id);
      w.once('exit', () => this.left(w.id));
      if (this.active)
        send(w, {
          type: 'mcp-authz:bundle-prepare',
          seq: 0,
          origin: this.active.origin,
          bundle: this.active.bytes.toString('base64'),
          activate: true,
        });
    } else if (m.type === 'mcp-authz:bundle-prepared' || m.type === 'mcp-authz:bundle-activated') {
      const round = this.round;
      if (
        !round ||
        m.seq !== round.seq ||
        round.step !== (m.type === 'mcp-authz:bundle-prepared' ? 'prepare' : 'activate') ||
        !round.waiting.delete(w.id)
      )
        return;
      if (m.type === 'mcp-authz:bundle-prepared') {
        if (m.error !== undefined) round.errors.push(`worker ${w.id}: ${m.error}`);
        else round.revision ??= m.revision;
      }
      if (round.waiting.size === 0) round.done();
    }
  }

  private broadcast(m: BundleMessage): void {
    for (const id of this.members) {
      const w = cluster.workers?.[id];
      if (w) send(w, m);
    }
  }

  private left(id: number): void {
    this.members.delete(id);
    const round = this.round;
    if (round?.waiting.delete(id) && round.waiting.size === 0) round.done();
  }

  private async distribute(bytes: Buffer, origin: string): Promise<string> {
    const seq = ++this.seq;
    const workers = [...this.members]
      .map((id) => cluster.workers?.[id])
      .filter((w): w is Worker => w?.isConnected() === true);
    if (workers.length === 0) throw new Error('no worker is listening for bundles yet');
    const prepared = await this.step(seq, 'prepare', workers, {
      type: 'mcp-authz:bundle-prepare',
      seq,
      origin,
      bundle: bytes.toString('base64'),
    });
    if (prepared.errors.length > 0 || prepared.revision === undefined) {
      for (const w of workers) send(w, { type: 'mcp-authz:bundle-discard', seq });
      throw new Error(prepared.errors[0] ?? 'no worker built the bundle');
    }
    // Every worker built it: each swaps it in and says so before the activation is reported.
    const activated = await this.step(seq, 'activate', workers, { type: 'mcp-authz:bundle-activate', seq });
    if (activated.errors.length > 0)
      this.logger.warn(
        { bundle: this.poller.status.name, err: activated.errors[0] },
        'a worker did not confirm the activation',
      );
    this.active = { bytes, origin };
    // A worker that joined during the round has the previous bundle: hand it this one.
    for (const id of this.members) {
      const w = cluster.workers?.[id];
      if (w && !workers.includes(w))
        send(w, { type: 'mcp-authz:bundle-prepare', seq: 0, origin, bundle: bytes.toString('base64'), activate: true });
    }
    this.logger.info(
      { bundle: this.poller.status.name, policy_revision: prepared.revision, workers: workers.length },
      'bundle activated on every worker',
    );
    return prepared.revision;
  }

  /** Sends `message` to every worker and waits for each one's answer (or its exit, or the timeout). */
  private async step(seq: number, step: Round['step'], workers: Worker[], message: BundleMessage): Promise<Round> {
    const round: Round = {
      seq,
      step,
      waiting: new Set(workers.map((w) => w.id)),
      errors: [],
      revision: undefined,
      done: () => undefined,
    };
    this.round = round;
    const finished = new Promise<void>((resolve) => (round.done = resolve));
    for (const w of workers) send(w, message);
    const timer = setTimeout(() => {
      round.errors.push(`${round.waiting.size} worker(s) did not answer within ${PREPARE_TIMEOUT_MS / 1000} s`);
      round.done();
    }, PREPARE_TIMEOUT_MS);
    await finished;
    clearTimeout(timer);
    this.round = undefined;
    return round;
  }
}

function send(w: Worker, m: BundleMessage): void {
  if (w.isConnected()) w.send(m);
}

/** The worker's side: builds what the primary hands over, swaps it in when told to. */
export function workerBundleFeed(source: PolicySource, events: ServiceEvents, bundle: string): void {
  const staged = new Map<number, LoadedPolicy>();
  const reply = (m: BundleMessage) => process.send?.(m);
  process.on('message', (raw: unknown) => {
    const m = raw as BundleMessage;
    if (m?.type === 'mcp-authz:bundle-prepare' && typeof m.bundle === 'string') {
      source.stage(Buffer.from(m.bundle, 'base64'), m.origin).then(
        (policy) => {
          if (m.activate) {
            source.commit(policy);
            return;
          }
          staged.clear();
          staged.set(m.seq, policy);
          reply({ type: 'mcp-authz:bundle-prepared', seq: m.seq, revision: policy.engine.revision });
        },
        (err: unknown) => {
          if (!m.activate)
            reply({
              type: 'mcp-authz:bundle-prepared',
              seq: m.seq,
              error: err instanceof Error ? err.message : String(err),
            });
        },
      );
    } else if (m?.type === 'mcp-authz:bundle-activate') {
      const policy = staged.get(m.seq);
      staged.clear();
      if (policy) source.commit(policy);
      reply({ type: 'mcp-authz:bundle-activated', seq: m.seq });
    } else if (m?.type === 'mcp-authz:bundle-request') {
      events.bundleRequest?.(bundle, m.result);
    } else if (m?.type === 'mcp-authz:bundle-discard') {
      staged.delete(m.seq);
    }
  });
  reply({ type: 'mcp-authz:bundle-sync' });
}
