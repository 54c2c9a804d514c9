import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';

/** A TCP port that was free a moment ago on 127.0.0.1. */
export async function freePort(): Promise<number> {
  return (await freePorts(1))[0] as number;
}

/** Listens on `port` on 127.0.0.1; undefined if it is taken. */
function hold(port: number): Promise<Server | undefined> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once('error', () => resolve(undefined));
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
}

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
/** Ports are taken below the ephemeral range, in a slice of its own per jest worker (0: the global setup). */
function slice(): { first: number; last: number } {
  const [low] = ephemeralRange();
  const floor = Math.max(1_024, Math.min(20_000, low - SLICES * SLICE));
  const index = Number(process.env.JEST_WORKER_ID ?? 0) % SLICES;
  const first = floor + index * SLICE;
  return { first, last: first + SLICE - 1 };
}

const { first: FIRST, last: LAST } = slice();
// A fresh start per module instance: a worker's next test file does not re-try the ports its last one used.
let cursor = FIRST + Math.floor(Math.random() * (LAST - FIRST + 1));

function nextCandidate(): number {
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
 * They come from below the kernel's ephemeral range, from a slice of their own per jest worker. A port
 * from `listen(0)` stayed free only until the test's process bound it: another worker's `listen(0)`
 * could take it in between (or a connection to it could pick it as its own local port and connect to
 * itself), and `npm start` then took that listener for a running broker and waited on it for ever.
 */
export async function freePorts(count: number, run = 1): Promise<number[]> {
  const held: Server[] = [];
  try {
    for (let attempt = 0; held.length === 0 && attempt < SLICE; attempt++) {
      const start = nextCandidate();
      if (start + run - 1 > LAST) continue;
      const group: Server[] = [];
      for (let i = 0; i < run; i++) {
        const server = await hold(start + i);
        if (!server) break;
        group.push(server);
      }
      if (group.length === run) held.push(...group);
      else await Promise.all(group.map((s) => new Promise((r) => s.close(r))));
      if (group.length === run) cursor = start + run > LAST ? FIRST : start + run;
    }
    if (held.length === 0) throw new Error(`no ${run} consecutive free ports on 127.0.0.1 in ${FIRST}-${LAST}`);
    for (let attempt = 0; held.length < count && attempt < SLICE; attempt++) {
      const server = await hold(nextCandidate());
      if (server) held.push(server);
    }
    if (held.length < count) throw new Error(`no ${count} free ports on 127.0.0.1 in ${FIRST}-${LAST}`);
    return held.map((s) => {
      const address = s.address();
      return typeof address === 'object' && address ? address.port : 0;
    });
  } finally {
    await Promise.all(held.map((s) => new Promise((r) => s.close(r))));
  }
}
