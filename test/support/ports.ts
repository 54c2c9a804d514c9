import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';

/** A TCP port that was free a moment ago on 127.0.0.1. */
export async function freePort(): Promise<number> {
  return (await freePorts(1))[0] as number;
}

/** Listens on `port` (0: any) on 127.0.0.1; undefined if it is taken. */
function hold(port: number): Promise<Server | undefined> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once('error', () => resolve(undefined));
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
}

const portOf = (server: Server): number => {
  const address = server.address();
  return typeof address === 'object' && address ? address.port : 0;
};

/** The kernel's ephemeral range (`ip_local_port_range`): where `listen(0)` and outgoing sockets take ports. */
function ephemeralRange(): [number, number] {
  try {
    const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (low && high) return [low, high];
  } catch {
    // not Linux: the IANA dynamic range
  }
  return [49_152, 65_535];
}

const SLICES = 16;
const SLICE = 700;

/**
 * Where the slices lie: below the ephemeral range (from 20,000 at most, clear of the well-known ports and
 * of this stack's defaults), else above it; undefined when neither side has room for all of them (a range
 * tuned to 1024-65535): then ports come from `listen(0)` as before, inside the range.
 */
export function slicesStart([low, high]: [number, number] = ephemeralRange()): number | undefined {
  const room = SLICES * SLICE;
  if (low - room >= 10_000) return Math.min(20_000, low - room);
  if (65_535 - high >= room) return high + 1;
  return undefined;
}

/**
 * A slice of its own per jest worker (JEST_WORKER_ID 1, 2, …; 0 without one: the global setup, the bench).
 * Workers beyond 16 share slices with lower ones; a port is still free when chosen.
 */
function slice(): { first: number; last: number } | undefined {
  const start = slicesStart();
  if (start === undefined) return undefined;
  const worker = Number.parseInt(process.env.JEST_WORKER_ID ?? '0', 10);
  const first = start + ((Number.isInteger(worker) && worker > 0 ? worker : 0) % SLICES) * SLICE;
  return { first, last: first + SLICE - 1 };
}

const range = slice();
const FIRST = range?.first ?? 0;
const LAST = range?.last ?? 0;
// A fresh start per module instance: a worker's next test file does not re-try the ports its last one used.
let cursor = FIRST + Math.floor(Math.random() * (LAST - FIRST + 1));

/** The next port to try: from the slice, else 0 (`listen(0)`: the kernel picks one). */
function nextCandidate(): number {
  if (range === undefined) return 0;
  const port = cursor;
  cursor = cursor >= LAST ? FIRST : cursor + 1;
  return port;
}

/**
 * `count` distinct TCP ports free a moment ago on 127.0.0.1, the first `run` of them consecutive (N,
 * N+1, …: a broker whose controller listens on its port + 1, as `scripts/stack.ts` starts it). They are
 * held open together while chosen, so none is handed out twice and none is N+1 of the run — separate
 * `freePort` calls could return N+1 for another listener, and the broker then died at start-up.
 *
 * They come from outside the kernel's ephemeral range (`slicesStart`), from a slice of their own per jest
 * worker. A port from `listen(0)` stayed free only until the test's process bound it: another worker's
 * `listen(0)` could take it in between (or a connection to it could pick it as its own local port and
 * connect to itself), and `npm start` then took that listener for a running broker and waited on it.
 */
export async function freePorts(count: number, run = 1): Promise<number[]> {
  const held: Server[] = [];
  const where = range ? `in ${FIRST}-${LAST}` : 'from listen(0)';
  const close = (servers: Server[]) => Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  try {
    for (let attempt = 0; held.length === 0 && attempt < SLICE; attempt++) {
      const first = await hold(nextCandidate());
      if (!first) continue;
      const base = portOf(first);
      const group: Server[] = [first];
      for (let i = 1; i < run && (range === undefined || base + i <= LAST); i++) {
        const next = await hold(base + i);
        if (!next) break;
        group.push(next);
      }
      if (group.length < run) {
        await close(group);
        continue;
      }
      held.push(...group);
      if (range) cursor = base + run > LAST ? FIRST : base + run;
    }
    if (held.length === 0) throw new Error(`no ${run} consecutive free ports on 127.0.0.1 ${where}`);
    for (let attempt = 0; held.length < count && attempt < SLICE; attempt++) {
      const server = await hold(nextCandidate());
      if (server) held.push(server);
    }
    if (held.length < count) throw new Error(`no ${count} free ports on 127.0.0.1 ${where}`);
    return held.map(portOf);
  } finally {
    await close(held);
  }
}
