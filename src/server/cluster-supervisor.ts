// The primary's workers: forks them, knows which are up and whether each serves (its policy
// loaded), replaces one that exits after the cluster has started (within a restart budget),
// and stops them all on shutdown. The primary's health is theirs: SERVING when every worker
// is up and says it serves.
import cluster, { type Worker } from 'node:cluster';
import type { Logger } from '../log/logger.js';
import { asClusterMessage, type ClusterMessage } from './cluster-messages.js';
import type { HealthState, ServingStatus } from './health.js';

export interface SupervisorOptions {
  workers: number;
  logger: Logger;
  health: HealthState;
  /** Every other message a worker sends (lockouts). */
  onMessage(worker: Worker, m: ClusterMessage): void;
}

const RESTART_WINDOW_MS = 60_000;

/**
 * V8's young generation per worker, in MiB. Node's default (16 MiB semi-spaces, 32 MiB of new
 * space) is a quarter of a worker's resident memory, and a Check's garbage is small and
 * short-lived: 4 MiB took 25 MiB off each worker at half load with no measurable cost per
 * Check (docs/kubernetes.md, "Sizing").
 */
export const WORKER_SEMI_SPACE_MIB = 4;

/** The workers' Node.js options: the parent's, with the young generation set unless the operator set it. */
export function workerExecArgv(execArgv: readonly string[], nodeOptions: string | undefined): string[] {
  const set = (s: string) => s.includes('--max-semi-space-size');
  if (execArgv.some(set) || (nodeOptions !== undefined && set(nodeOptions))) return [...execArgv];
  return [...execArgv, `--max-semi-space-size=${WORKER_SEMI_SPACE_MIB}`];
}

export class WorkerSupervisor {
  /** Resolves with an exit code when the cluster cannot go on (a start-up failure, or workers that keep exiting). */
  readonly failed: Promise<number>;
  private fail: (code: number) => void = () => undefined;
  private readonly ready = new Map<number, number>(); // worker id → gRPC port
  private extAuthzPort = 0;
  private readonly workerHealth = new Map<number, { status: ServingStatus; reasons: string[] }>();
  private allReady: () => void = () => undefined;
  private started = false;
  private stopping = false;
  private restarts: number[] = [];

  constructor(private readonly opts: SupervisorOptions) {
    this.failed = new Promise<number>((resolve) => (this.fail = resolve));
    cluster.on('exit', (w, code, signal) => this.exited(w, code, signal));
  }

  /** Forks the workers; resolves with 0 once every one serves, or with the exit code of a failed start. */
  async start(): Promise<number> {
    const serving = new Promise<number>((resolve) => (this.allReady = () => resolve(0)));
    cluster.setupPrimary({ execArgv: workerExecArgv(process.execArgv, process.env.NODE_OPTIONS) });
    for (let i = 0; i < this.opts.workers; i++) this.fork();
    const code = await Promise.race([serving, this.failed]);
    this.started = code === 0;
    return code;
  }

  /** The gRPC port the workers share. */
  get grpcPort(): number {
    return [...this.ready.values()][0] ?? 0;
  }

  /** The HTTP authorization service's port the workers share (0 when off). */
  get extAuthzHttpPort(): number {
    return this.extAuthzPort;
  }

  /** Tells every worker to drain; kills those still running after `killAfterMs`. */
  async stop(killAfterMs: number): Promise<void> {
    this.stopping = true;
    const alive = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined && !w.isDead());
    await Promise.all(alive.map((w) => stopWorker(w, killAfterMs)));
  }

  private fork(): void {
    const w = cluster.fork();
    // A message sent to a worker that has just died (killed before the primary noticed: its
    // last requests are still being answered) fails with EPIPE or ERR_IPC_CHANNEL_CLOSED,
    // emitted on the worker. Unheard, that error would end the primary and every worker with it.
    let warned = false;
    w.on('error', (err: NodeJS.ErrnoException) => {
      if (warned) return;
      warned = true;
      this.opts.logger.warn(
        { worker: w.id, err: { message: err.message, code: err.code } },
        'a message to a worker that has exited was not delivered',
      );
    });
    w.on('message', (raw: unknown) => {
      const m = asClusterMessage(raw);
      if (!m) return;
      if (m.type === 'mcp-authz:worker-health') {
        this.workerHealth.set(w.id, { status: m.status, reasons: m.reasons });
        this.refreshHealth();
      } else if (m.type === 'mcp-authz:worker-ready') {
        this.ready.set(w.id, m.grpcPort);
        if (m.extAuthzHttpPort) this.extAuthzPort = m.extAuthzHttpPort;
        this.refreshHealth();
        if (this.ready.size === this.opts.workers && !this.stopping) this.allReady();
      } else {
        this.opts.onMessage(w, m);
      }
    });
  }

  private refreshHealth(): void {
    if (this.stopping) return;
    const reasons: string[] = [];
    for (const [id, h] of this.workerHealth)
      if (h.status !== 'SERVING') reasons.push(...h.reasons.map((r) => `worker ${id}: ${r}`));
    if (this.ready.size < this.opts.workers) reasons.push(`${this.ready.size} of ${this.opts.workers} workers serving`);
    this.opts.health.set(reasons.length === 0 ? 'SERVING' : 'NOT_SERVING', reasons);
  }

  private exited(w: Worker, code: number, signal: string): void {
    this.ready.delete(w.id);
    this.workerHealth.delete(w.id);
    const { logger, health, workers } = this.opts;
    if (this.stopping) {
      // A worker that stopped by itself exits 0; one killed after the grace period says so here.
      if (code === 0) logger.info({ worker: w.id, pid: w.process.pid }, 'worker exited');
      else logger.warn({ worker: w.id, pid: w.process.pid, code, signal }, 'worker exited while stopping, not cleanly');
      return;
    }
    logger.error({ worker: w.id, pid: w.process.pid, code, signal }, 'worker exited unexpectedly');
    // A worker that exits before all have served is a start-up failure (port in use, bad config): stop.
    if (!this.started) {
      this.fail(1);
      return;
    }
    health.set('NOT_SERVING', ['a worker exited; replacing it']);
    const now = Date.now();
    this.restarts = [...this.restarts.filter((t) => now - t < RESTART_WINDOW_MS), now];
    if (this.restarts.length > workers * 3) {
      logger.error('workers keep exiting: giving up');
      this.fail(1);
      return;
    }
    this.fork();
  }
}

function stopWorker(w: Worker, killAfterMs: number): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = setTimeout(() => w.process.kill('SIGKILL'), killAfterMs);
    w.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    if (w.isConnected()) w.send({ type: 'mcp-authz:shutdown' } satisfies ClusterMessage);
    else w.process.kill('SIGTERM');
  });
}
