import { spawnSync, type SpawnSyncOptions } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { freePort } from './ports';

/**
 * A PostgreSQL server of our own — initdb into a temp dir with Debian's binaries
 * (/usr/lib/postgresql/<version>/bin), any free port, trust auth — that a test or the chaos run can
 * crash (SIGKILL of the postmaster) and restart (crash recovery on the same data directory). The
 * machine's PostgreSQL is never touched. As root the server runs as the `postgres` user
 * (initdb refuses root).
 */
export type PrivatePostgres = {
  port: number;
  dataDir: string;
  /** postgres://postgres@127.0.0.1:<port>/<database> */
  url: (database?: string) => string;
  /** The postmaster's pid (changes on restart). */
  pid: () => number | undefined;
  /** kill -9 of the postmaster and of every process it started; resolves once they are all gone. */
  crash: () => Promise<void>;
  /**
   * SIGSTOPs the WAL writer, the process that writes asynchronously committed transactions out of
   * PostgreSQL's memory: until a commit that waits for its flush (or a crash), they stay there, and a
   * crash undoes them. Returns the function that lets it run again.
   */
  pauseWalWriter: () => () => void;
  /** Starts the server again on its data directory (crash recovery) and waits until it accepts connections. */
  start: () => Promise<void>;
  running: () => boolean;
  /** Stops it (immediate) and removes its data directory. */
  destroy: () => Promise<void>;
};

export function postgresBinDir(): string {
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root)
    ? readdirSync(root).filter((v) => existsSync(path.join(root, v, 'bin', 'initdb')))
    : [];
  const newest = versions.sort((a, b) => Number(b) - Number(a))[0];
  if (!newest) throw new Error('no PostgreSQL binaries in /usr/lib/postgresql/*/bin (apt-get install postgresql)');
  return path.join(root, newest, 'bin');
}

function postgresUser(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const uid = Number(spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).stdout.trim());
  const gid = Number(spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).stdout.trim());
  if (!Number.isInteger(uid) || !Number.isInteger(gid) || uid <= 0)
    throw new Error('running as root needs a `postgres` user to run a private PostgreSQL');
  return { uid, gid };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** kill(2) that ignores a process already gone (a backend may exit on its own at any moment). */
function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
}

/** Pids of the processes whose parent is `pid` (the postmaster's backends and workers), from /proc. */
function childrenOf(pid: number): number[] {
  const kids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) kids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return kids;
}

/** The process title PostgreSQL gives a child (`postgres: walwriter`), '' if it is gone. */
function titleOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ').trim();
  } catch {
    return '';
  }
}

/**
 * Server settings under which only a commit that waits for its flush, or the WAL writer, writes WAL out:
 * no background writer's page writes (each flushes WAL first), no checkpoint, autovacuum's workers
 * asleep. With the WAL writer paused (`pauseWalWriter`), asynchronous commits stay in the server's
 * memory until a crash undoes them.
 */
const NO_BACKGROUND_WAL_FLUSH: Readonly<Record<string, string>> = {
  bgwriter_lru_maxpages: '0',
  checkpoint_timeout: '1h',
  autovacuum_naptime: '3600',
};

/** A pool on a private server whose clients' connection errors (the server crashed) are left to the test. */
function privatePool(server: PrivatePostgres): pg.Pool {
  const pool = new pg.Pool({ connectionString: server.url(), max: 4 });
  pool.on('error', () => undefined);
  return pool;
}

/**
 * For a jest suite about asynchronous commits: a private server with NO_BACKGROUND_WAL_FLUSH, `prepare`d
 * (e.g. migrated) before the suite and removed after it, and a pool on it. `crashAfter(work)` runs
 * `work` with the WAL writer paused, then crashes the server and starts it again: what `work` committed
 * asynchronously is undone, what waited for its flush stays; the WAL writer runs again whatever happens,
 * and `pool()` is a new pool afterwards (the old one's connections died with the server).
 */
export function crashablePostgresSuite(prepare: (url: string) => Promise<unknown>): {
  url: () => string;
  pool: () => pg.Pool;
  crashAfter: (work: () => Promise<void>) => Promise<void>;
} {
  let server: PrivatePostgres | undefined;
  let pool: pg.Pool | undefined;
  const started = (): { server: PrivatePostgres; pool: pg.Pool } => {
    if (!server || !pool) throw new Error('the private PostgreSQL is not started (used outside the suite?)');
    return { server, pool };
  };
  beforeAll(async () => {
    server = await startPrivatePostgres({ settings: NO_BACKGROUND_WAL_FLUSH });
    await prepare(server.url());
    pool = privatePool(server);
  }, 120_000);
  afterAll(async () => {
    await pool?.end();
    await server?.destroy();
  });
  return {
    url: () => started().server.url(),
    pool: () => started().pool,
    crashAfter: async (work) => {
      const current = started();
      const resume = current.server.pauseWalWriter();
      try {
        await work();
        await current.server.crash();
      } finally {
        resume();
      }
      await current.pool.end();
      await current.server.start();
      pool = privatePool(current.server);
    },
  };
}

/** `settings`: server parameters (`-c name=value`) beside the ones every private server gets. */
export async function startPrivatePostgres(
  opts: { port?: number; settings?: Record<string, string> } = {},
): Promise<PrivatePostgres> {
  const bin = postgresBinDir();
  const user = postgresUser();
  const base = mkdtempSync(path.join(tmpdir(), 'rp-pg-'));
  const dataDir = path.join(base, 'data');
  const logFile = path.join(base, 'postgres.log');
  if (user) {
    chownSync(base, user.uid, user.gid);
    chmodSync(base, 0o755);
  }
  const run = (cmd: string, args: string[], extra: SpawnSyncOptions = {}) => {
    const result = spawnSync(path.join(bin, cmd), args, {
      encoding: 'utf8',
      ...(user ? { uid: user.uid, gid: user.gid } : {}),
      ...extra,
    });
    if (result.status !== 0)
      throw new Error(`${cmd} failed (${result.status}): ${String(result.stderr || result.stdout).slice(0, 800)}`);
    return result;
  };
  run('initdb', ['-D', dataDir, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync', '--no-instructions']);
  const port = opts.port ?? (await freePort());
  // Sockets in the data dir (never /var/run/postgresql, the machine server's); fsync off: a SIGKILL
  // of the server keeps the kernel's page cache, so crash recovery is exercised without disk flushes.
  const extra = Object.entries(opts.settings ?? {}).map(([name, value]) => ` -c ${name}=${value}`);
  const serverOptions = `-p ${port} -c listen_addresses=127.0.0.1 -k ${dataDir} -c fsync=off -c max_connections=200${extra.join('')}`;
  let pid: number | undefined;
  const readPid = () => Number(readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
  const start = async () => {
    run('pg_ctl', ['-D', dataDir, '-l', logFile, '-o', serverOptions, '-w', '-t', '60', 'start'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    pid = readPid();
  };
  await start();
  const running = () => pid !== undefined && alive(pid);

  return {
    port,
    dataDir,
    url: (database = 'postgres') => `postgres://postgres@127.0.0.1:${port}/${database}`,
    pid: () => pid,
    running,
    start: async () => {
      if (running()) return;
      await start();
    },
    crash: async () => {
      if (pid === undefined || !alive(pid)) return;
      // Stopped first, so it forks no child after the list below is taken; then everything at once, as
      // a machine's crash would (a stopped WAL writer could not even notice the postmaster's death).
      // Until all are gone, a new postmaster would refuse the data directory (shared memory attached).
      signal(pid, 'SIGSTOP');
      const backends = childrenOf(pid);
      for (const p of [pid, ...backends]) signal(p, 'SIGKILL');
      while (alive(pid) || backends.some(alive)) await new Promise((r) => setTimeout(r, 20));
      pid = undefined;
    },
    pauseWalWriter: () => {
      const writer = pid === undefined ? undefined : childrenOf(pid).find((c) => titleOf(c).endsWith('walwriter'));
      if (writer === undefined) throw new Error('no running WAL writer to pause');
      signal(writer, 'SIGSTOP');
      return () => signal(writer, 'SIGCONT');
    },
    destroy: async () => {
      if (running())
        spawnSync(path.join(bin, 'pg_ctl'), ['-D', dataDir, '-m', 'immediate', '-w', 'stop'], {
          ...(user ? { uid: user.uid, gid: user.gid } : {}),
          stdio: 'ignore',
        });
      rmSync(base, { recursive: true, force: true });
    },
  };
}
