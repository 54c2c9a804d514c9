import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';

/**
 * Runs one service (`services/<name>/src/main.ts`) as its own OS process, the way production runs it:
 * configured only from the environment. Used by `npm start`, the end-to-end suite and the chaos run,
 * which need real processes to SIGTERM, SIGKILL and restart.
 */
export type ServiceName = 'accounts' | 'relay' | 'mailer';

export const REPO_ROOT = path.resolve(__dirname, '..', '..');

export type ServiceProcess = {
  name: ServiceName;
  label: string;
  child: ChildProcess;
  pid: number;
  /** Resolves with the exit code (null after a signal) when the process ends. */
  exited: Promise<number | null>;
  /** SIGTERM, then SIGKILL after graceMs. */
  stop: (graceMs?: number) => Promise<number | null>;
  /** SIGKILL: no shutdown code runs (a crash). */
  kill: () => Promise<number | null>;
};

export function spawnService(
  name: ServiceName,
  opts: {
    env: NodeJS.ProcessEnv;
    label?: string;
    onLine?: (line: string, stream: 'stdout' | 'stderr') => void;
    /** Extra node flags, e.g. ['--cpu-prof', '--cpu-prof-dir=…'] (not allowed in NODE_OPTIONS). */
    nodeArgs?: string[];
    /**
     * Run in a process group of its own, so a terminal's Ctrl-C (SIGINT to the foreground group)
     * reaches only the supervisor, which then sends the one SIGTERM (npm start).
     */
    ownProcessGroup?: boolean;
  },
): ServiceProcess {
  const main = path.join(REPO_ROOT, 'services', name, 'src', 'main.ts');
  const child = spawn(process.execPath, [...(opts.nodeArgs ?? []), '--import', 'tsx', main], {
    cwd: REPO_ROOT,
    env: opts.env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: opts.ownProcessGroup ?? false,
  });
  if (child.pid === undefined) throw new Error(`could not spawn ${name}`);
  const label = opts.label ?? name;
  const onLine = opts.onLine ?? (() => undefined);
  readline.createInterface({ input: child.stdout! }).on('line', (l) => onLine(l, 'stdout'));
  readline.createInterface({ input: child.stderr! }).on('line', (l) => onLine(l, 'stderr'));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let done = false;
  void exited.then(() => {
    done = true;
  });
  return {
    name,
    label,
    child,
    pid: child.pid,
    exited,
    stop: async (graceMs = 15_000) => {
      if (done) return exited;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
    kill: async () => {
      if (done) return exited;
      child.kill('SIGKILL');
      return exited;
    },
  };
}

/** Polls `url` (a /readyz) until it answers 200, or throws after timeoutMs. */
export async function waitForReady(
  url: string,
  timeoutMs = 60_000,
  isDead: () => boolean = () => false,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    if (isDead()) throw new Error(`${url}: the process exited before it was ready`);
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2_000) });
      if (res.status === 200) return;
      last = `HTTP ${res.status} ${(await res.text()).slice(0, 300)}`;
    } catch (err) {
      last = err instanceof Error ? err.message : String(err);
    }
    if (Date.now() > deadline) throw new Error(`${url} not ready within ${timeoutMs} ms (last: ${last})`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
