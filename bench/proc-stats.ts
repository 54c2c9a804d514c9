import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import pg from 'pg';

/**
 * CPU time and memory of the stack's processes, read from /proc (Linux): what `npm run bench` and
 * `npm run soak` charge to each component. A component is a set of root pids (a service process and
 * its descendants, the Kafka JVM) or PostgreSQL backends found by database name. The load generator
 * and the SMTP test server run in the driving process and are never part of a component.
 */

const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** Fields of a /proc stat file (a process's or a thread's) after the command name (which may hold spaces, parentheses). */
function statFields(path: string): string[] | undefined {
  try {
    const text = readFileSync(path, 'utf8');
    return text.slice(text.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** utime + stime in clock ticks. After the name: state(0) ppid(1) ... utime(11) stime(12). */
const cpuTicks = (f: string[]): number => Number(f[11]) + Number(f[12]);

/** User + system CPU time of one process (all its threads) in ms; undefined once it has exited. */
export function processCpuMs(pid: number): number | undefined {
  const f = statFields(`/proc/${pid}/stat`);
  return f ? cpuTicks(f) * (1000 / CLK_TCK) : undefined;
}

/** The thread ids of `pid`; undefined once it has exited. */
function threadIds(pid: number): string[] | undefined {
  try {
    return readdirSync(`/proc/${pid}/task`);
  } catch {
    return undefined;
  }
}

/** A file of one thread of `pid`; undefined once the thread has ended. */
function threadFile(pid: number, tid: string, name: 'comm' | 'status'): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/task/${tid}/${name}`, 'utf8');
  } catch {
    return undefined;
  }
}

/** CPU time (ms) of the threads of `pid` that `pick(tid, comm)` selects, 0 if none or gone. */
export function threadsCpuMs(pid: number, pick: (tid: number, comm: string) => boolean): number {
  let ticks = 0;
  for (const tid of threadIds(pid) ?? []) {
    const comm = threadFile(pid, tid, 'comm');
    if (comm === undefined || !pick(Number(tid), comm)) continue;
    const f = statFields(`/proc/${pid}/task/${tid}/stat`);
    if (f) ticks += cpuTicks(f);
  }
  return (ticks * 1000) / CLK_TCK;
}

/**
 * CPU time (ms) of a JVM's JIT compiler threads (C1/C2 CompilerThread*), 0 if none or gone: part of the
 * process's figure, reported beside it because it is a warm-up cost — a fresh JVM compiles for minutes.
 */
export const jitCompilerCpuMs = (pid: number): number =>
  threadsCpuMs(pid, (_tid, comm) => /^C[12] CompilerThre/.test(comm));

/**
 * CPU time (ms) of a Node process's main thread (the event loop: HTTP, SQL, Kafka, JSON), 0 if gone. The
 * rest of the process's figure is libuv's thread pool (argon2 hashes there) and V8's helper threads.
 */
export const mainThreadCpuMs = (pid: number): number => threadsCpuMs(pid, (tid) => tid === pid);

/**
 * Times the threads of `pid` went to sleep waiting and were woken (the sum of their
 * voluntary_ctxt_switches): a count of wake-ups — a timer, a socket, a lock — that, unlike CPU time, no
 * clock tick rounds; undefined once the process has exited.
 */
export function processWakeups(pid: number): number | undefined {
  const tids = threadIds(pid);
  if (tids === undefined) return undefined;
  let total = 0;
  for (const tid of tids) {
    const m = /^voluntary_ctxt_switches:\s+(\d+)/m.exec(threadFile(pid, tid, 'status') ?? '');
    total += m ? Number(m[1]) : 0;
  }
  return total;
}

/** Resident set size in bytes (VmRSS); undefined once the process has exited. */
export function processRssBytes(pid: number): number | undefined {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** `pid` and every process below it (e.g. a helper binary a service spawned). */
export function processTree(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const ppid = Number(statFields(`/proc/${entry}/stat`)?.[1]);
    if (!Number.isFinite(ppid)) continue;
    const list = children.get(ppid) ?? [];
    list.push(Number(entry));
    children.set(ppid, list);
  }
  const out: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    const p = queue.shift() as number;
    out.push(p);
    queue.push(...(children.get(p) ?? []));
  }
  return out;
}

/** How a component's pids are found at each sample. */
export type PidSource = () => number[] | Promise<number[]>;

/** The process trees under these roots (roots that have exited are skipped). */
export const treesOf =
  (roots: () => (number | undefined)[]): PidSource =>
  () =>
    roots()
      .filter((p): p is number => p !== undefined)
      .flatMap((p) => processTree(p));

/**
 * PostgreSQL backends connected to any of `databases` (pg_stat_activity), read through a connection
 * to `adminUrl`'s database — so the sampler's own backend is never counted unless that database is
 * one of `databases`, and it is excluded by pid anyway.
 */
export function postgresBackends(adminUrl: string, databases: string[]): PidSource & { close: () => Promise<void> } {
  let client: pg.Client | undefined;
  let ownPid = 0;
  const source = async (): Promise<number[]> => {
    if (!client) {
      client = new pg.Client({ connectionString: adminUrl, application_name: 'bench-cpu-sampler' });
      client.on('error', () => undefined);
      await client.connect();
      ownPid = (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid ?? 0;
    }
    const { rows } = await client.query<{ pid: number }>(
      'SELECT pid FROM pg_stat_activity WHERE datname = ANY($1) AND pid <> $2',
      [databases, ownPid],
    );
    return rows.map((r) => r.pid);
  };
  return Object.assign(source, { close: async () => void (await client?.end().catch(() => undefined)) });
}

/** The database name in a PostgreSQL URL. */
export const databaseOf = (url: string): string => decodeURIComponent(new URL(url).pathname.slice(1));

/** The middle value (the mean of the two middle ones), 0 for none: one odd sample does not move it. */
export function median(values: readonly number[]): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/**
 * A trend through per-minute figures that one odd minute cannot decide (Theil–Sen): the slope is the
 * median of the slopes between every pair of minutes, the line goes through the median of the minutes'
 * offsets from it. A soak judges RSS growth from this line's value at its first judged minute to its
 * value at the last: a process read 10–20 MiB low right after a collection (the soak failed twice on
 * such a reference minute) moves neither, while a steady leak moves the slope, and the line with it,
 * over the whole span. `growth` = to / from - 1 (0 for fewer than two minutes).
 */
export function robustTrend(values: readonly number[]): { from: number; to: number; growth: number } {
  const n = values.length;
  if (n < 2) return { from: values[0] ?? 0, to: values[0] ?? 0, growth: 0 };
  const slopes: number[] = [];
  for (let i = 0; i < n; i++)
    for (let j = i + 1; j < n; j++) slopes.push(((values[j] as number) - (values[i] as number)) / (j - i));
  const slope = median(slopes);
  const from = median(values.map((v, i) => v - slope * i));
  const to = from + slope * (n - 1);
  return { from, to, growth: from > 0 ? to / from - 1 : 0 };
}

/** A component over a window: CPU ms, median RSS (MiB), pids seen, wake-ups (`processWakeups`). */
export type ComponentUsage = { cpu_ms: number; rss_mb: number; pids: number; wakeups: number };

/**
 * Samples every `intervalMs`: per pid, the CPU time used since the window began (a pid first seen
 * after the start counts from zero: it was created inside the window), and per component the summed
 * RSS. CPU of a process that exits between two samples is lost for that interval only. Wake-ups are read
 * at the window's two ends only (every thread's status file: too many reads to repeat every sample); a
 * process that exits inside the window loses its own.
 */
export class CpuSampler {
  private readonly first = new Map<number, number>();
  private readonly last = new Map<number, number>();
  private readonly wakeFirst = new Map<number, number>();
  private readonly wakeLast = new Map<number, number>();
  private readonly owner = new Map<number, string>();
  private readonly rss = new Map<string, number[]>();
  private timer: NodeJS.Timeout | undefined;
  private sampling: Promise<void> = Promise.resolve();
  private startedAt = 0;

  constructor(
    private readonly components: Record<string, PidSource>,
    private readonly intervalMs = 250,
  ) {}

  /** Begins a window: every current pid's CPU time is its baseline. */
  async start(): Promise<void> {
    this.first.clear();
    this.last.clear();
    this.wakeFirst.clear();
    this.wakeLast.clear();
    this.rss.clear();
    this.startedAt = performance.now();
    await this.sample(true, this.wakeFirst);
    this.timer = setInterval(() => {
      this.sampling = this.sampling.then(() => this.sample(false)).catch(() => undefined);
    }, this.intervalMs);
  }

  /** RSS samples from now on only (e.g. after a warm-up inside the window). */
  resetRss(): void {
    this.rss.clear();
  }

  /** Ends the window: per component CPU ms over it and its median RSS (MiB) over the samples kept. */
  async stop(): Promise<{ seconds: number; components: Record<string, ComponentUsage> }> {
    clearInterval(this.timer);
    await this.sampling;
    await this.sample(false, this.wakeLast);
    const seconds = (performance.now() - this.startedAt) / 1000;
    const components: Record<string, ComponentUsage> = {};
    for (const name of Object.keys(this.components)) components[name] = { cpu_ms: 0, rss_mb: 0, pids: 0, wakeups: 0 };
    for (const [pid, name] of this.owner) {
      const c = components[name] as ComponentUsage;
      c.cpu_ms += (this.last.get(pid) ?? 0) - (this.first.get(pid) ?? 0);
      const woken = this.wakeLast.get(pid);
      if (woken !== undefined) c.wakeups += woken - (this.wakeFirst.get(pid) ?? 0);
      c.pids += 1;
    }
    for (const [name, values] of this.rss) {
      const c = components[name] as ComponentUsage;
      c.rss_mb = median(values) / 2 ** 20;
    }
    return { seconds, components };
  }

  /** The latest RSS per component in MiB (for per-minute soak lines). */
  async rssNow(): Promise<Record<string, number>> {
    const out: Record<string, number> = {};
    for (const [name, source] of Object.entries(this.components)) {
      const pids = await source();
      out[name] = pids.reduce((sum, pid) => sum + (processRssBytes(pid) ?? 0), 0) / 2 ** 20;
    }
    return out;
  }

  /** One sample; `wakeups`: also read every pid's wake-ups into that map (the window's two ends). */
  private async sample(atStart: boolean, wakeups?: Map<number, number>): Promise<void> {
    for (const [name, source] of Object.entries(this.components)) {
      let pids: number[];
      try {
        pids = await source();
      } catch {
        continue;
      }
      let rss = 0;
      for (const pid of pids) {
        const cpu = processCpuMs(pid);
        if (cpu === undefined) continue;
        if (!this.first.has(pid)) this.first.set(pid, atStart ? cpu : 0);
        this.last.set(pid, cpu);
        this.owner.set(pid, name);
        rss += processRssBytes(pid) ?? 0;
        if (wakeups) {
          const woken = processWakeups(pid);
          if (woken !== undefined) wakeups.set(pid, woken);
        }
      }
      const list = this.rss.get(name) ?? [];
      list.push(rss);
      this.rss.set(name, list);
    }
  }
}

/**
 * The V8 young generation's current size in MiB from a service's Prometheus text (prom-client's
 * `nodejs_heap_space_size_total_bytes{space="new"}`), undefined when absent. V8 grows it up to 32 MiB
 * under allocation and gives it back when idle (4–32 MiB in a soak's relay), which moves RSS by as much
 * without any object living longer: whatever survives two scavenges moves to the old generation, so a
 * leak never stays here.
 */
export function youngGenerationMiB(metricsText: string): number | undefined {
  const line = /^nodejs_heap_space_size_total_bytes\{[^}]*space="new"[^}]*\}\s+(\S+)/m.exec(metricsText);
  const bytes = line ? Number(line[1]) : NaN;
  return Number.isFinite(bytes) ? bytes / 1_048_576 : undefined;
}
