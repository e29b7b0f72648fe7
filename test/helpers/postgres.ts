// A real PostgreSQL server of the test's own: initdb into a temporary folder, postgres on a
// free loopback port (TCP only, trust authentication), stopped and removed by stop(). The
// server binaries come from Debian's package (scripts/install-tools.sh postgres). initdb and
// postgres refuse to run as root: as root, both run as the `postgres` system user the package
// creates, which then owns the temporary folder.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { freePort } from './redis.js';
import { waitFor } from './wait.js';

export interface TestPostgres {
  host: string;
  port: number;
  /** The superuser initdb made. */
  superuser: string;
  /** A connected client; the caller ends it. */
  connect(opts?: { user?: string; database?: string; password?: string }): Promise<pg.Client>;
  /** The server's own log so far (for a failing test's message). */
  log(): string;
  /** Stops the server (fast shutdown), keeping its data: the database is down until restart(). */
  halt(): Promise<void>;
  /** Starts the halted server again on the same port with the same data. */
  restart(): Promise<void>;
  /** Stops the server (fast shutdown) and removes its folder. */
  stop(): Promise<void>;
}

export interface PostgresOptions {
  /** Server settings (`-c name=value`) beside the test defaults. */
  settings?: Record<string, string>;
}

/** The folder of initdb and postgres: $MCP_AUTHZ_PG_BINDIR, else Debian's newest /usr/lib/postgresql/<major>/bin, else PATH. */
export function postgresBinDir(): string | undefined {
  const env = process.env.MCP_AUTHZ_PG_BINDIR;
  if (env) return env;
  const root = '/usr/lib/postgresql';
  if (existsSync(root)) {
    const majors = readdirSync(root)
      .filter((v) => /^\d+$/.test(v) && existsSync(join(root, v, 'bin', 'initdb')))
      .sort((a, b) => Number(b) - Number(a));
    if (majors[0] !== undefined) return join(root, majors[0], 'bin');
  }
  return undefined;
}

// uid and gid of a system user, from /etc/passwd (Node has no getpwnam).
function systemUser(name: string): { uid: number; gid: number } | undefined {
  for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
    const f = line.split(':');
    if (f[0] === name && f[2] !== undefined && f[3] !== undefined) return { uid: Number(f[2]), gid: Number(f[3]) };
  }
  return undefined;
}

export async function startPostgres(opts: PostgresOptions = {}): Promise<TestPostgres> {
  const bin = postgresBinDir();
  const exe = (name: string) => (bin ? join(bin, name) : name);
  const base = mkdtempSync(join(tmpdir(), 'mcp-authz-pg-'));
  const data = join(base, 'data');
  // As root: run as the postgres user (libuv drops the supplementary groups too).
  let as: { uid: number; gid: number } | undefined;
  if (process.getuid?.() === 0) {
    as = systemUser('postgres');
    if (as === undefined)
      throw new Error(
        'running as root and there is no "postgres" user to run PostgreSQL as (scripts/install-tools.sh postgres)',
      );
    chownSync(base, as.uid, as.gid);
  }
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: base, LC_ALL: 'C.UTF-8', LANG: 'C.UTF-8' };
  const init = spawnSync(
    exe('initdb'),
    ['-D', data, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--locale=C.UTF-8', '--no-sync', '--no-instructions'],
    {
      cwd: base,
      env,
      encoding: 'utf8',
      ...as,
    },
  );
  if (init.error || init.status !== 0) {
    rmSync(base, { recursive: true, force: true });
    throw new Error(
      `initdb failed (is PostgreSQL installed? scripts/install-tools.sh postgres): ${init.error?.message ?? ''}${init.stderr ?? ''}`,
    );
  }

  const settings: Record<string, string> = {
    listen_addresses: '127.0.0.1',
    unix_socket_directories: base,
    fsync: 'off',
    synchronous_commit: 'off',
    full_page_writes: 'off',
    max_connections: '30',
    shared_buffers: '16MB',
    log_min_messages: 'warning',
    ...opts.settings,
  };
  let proc: ChildProcess | undefined;
  let logs = '';
  let port = 0;
  const launch = async (fixedPort?: number) => {
    let exited = false;
    // A port taken between freePort() and the bind makes postgres exit: try another.
    for (let attempt = 0; attempt < 5; attempt++) {
      port = fixedPort ?? (await freePort());
      exited = false;
      const args = [
        '-D',
        data,
        '-p',
        String(port),
        ...Object.entries(settings).flatMap(([k, v]) => ['-c', `${k}=${v}`]),
      ];
      const p = spawn(exe('postgres'), args, { cwd: base, env, stdio: ['ignore', 'pipe', 'pipe'], ...as });
      proc = p;
      p.stdout!.on('data', (d) => (logs += d));
      p.stderr!.on('data', (d) => (logs += d));
      p.once('exit', () => (exited = true));
      p.once('error', (e) => {
        exited = true;
        logs += String(e);
      });
      try {
        await waitFor(
          `postgres on port ${port}`,
          async () => {
            if (exited) throw new Error(`postgres exited at start:\n${logs}`);
            return canConnect(port);
          },
          60_000,
          50,
        );
        return;
      } catch (e) {
        p.kill('SIGKILL');
        if (fixedPort !== undefined || !/could not bind|Address already in use/.test(logs) || attempt === 4) throw e;
      }
    }
  };
  try {
    await launch();
  } catch (e) {
    rmSync(base, { recursive: true, force: true });
    throw e;
  }
  const halt = async (server: ChildProcess) => {
    if (server.exitCode === null && server.signalCode === null) {
      const done = new Promise<void>((r) => server.once('exit', () => r()));
      server.kill('SIGINT');
      const timer = setTimeout(() => server.kill('SIGKILL'), 30_000);
      await done;
      clearTimeout(timer);
    }
  };
  // A test process that ends without stop() (a crash, a failed before hook) leaves no server or folder behind.
  const killOnExit = () => {
    proc?.kill('SIGKILL');
    rmSync(base, { recursive: true, force: true });
  };
  process.once('exit', killOnExit);

  return {
    host: '127.0.0.1',
    get port() {
      return port;
    },
    superuser: 'postgres',
    async connect(o = {}) {
      const client = new pg.Client({
        host: '127.0.0.1',
        port: port,
        user: o.user ?? 'postgres',
        database: o.database ?? 'postgres',
        password: o.password,
      });
      // An error after connecting (the server stopping) is reported by the next query, not thrown here.
      client.on('error', () => undefined);
      await client.connect();
      return client;
    },
    log: () => logs,
    async halt() {
      await halt(proc!);
    },
    async restart() {
      await launch(port);
    },
    async stop() {
      process.off('exit', killOnExit);
      await halt(proc!);
      rmSync(base, { recursive: true, force: true });
    },
  };
}

async function canConnect(port: number): Promise<boolean> {
  const c = new pg.Client({
    host: '127.0.0.1',
    port,
    user: 'postgres',
    database: 'postgres',
    connectionTimeoutMillis: 2000,
  });
  c.on('error', () => undefined);
  try {
    await c.connect();
    await c.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await c.end().catch(() => undefined);
  }
}
