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

/**
 * `count` distinct TCP ports free a moment ago on 127.0.0.1, the first `run` of them consecutive (N,
 * N+1, …: a broker whose controller listens on its port + 1, as `scripts/stack.ts` starts it). They are
 * held open together while chosen, so none is handed out twice and none is N+1 of the run — separate
 * `freePort` calls could return N+1 for another listener, and the broker then died at start-up.
 */
export async function freePorts(count: number, run = 1): Promise<number[]> {
  const held: Server[] = [];
  try {
    for (let attempt = 0; held.length === 0 && attempt < 100; attempt++) {
      const first = await hold(0);
      if (!first) continue;
      const rest: Server[] = [];
      for (let i = 1; i < run; i++) {
        const next = await hold(portOf(first) + i);
        if (!next) break;
        rest.push(next);
      }
      if (rest.length === run - 1) held.push(first, ...rest);
      else await Promise.all([first, ...rest].map((s) => new Promise((r) => s.close(r))));
    }
    if (held.length === 0) throw new Error(`no ${run} consecutive free ports on 127.0.0.1`);
    while (held.length < count) {
      const server = await hold(0);
      if (!server) throw new Error('no free port on 127.0.0.1');
      held.push(server);
    }
    return held.map(portOf);
  } finally {
    await Promise.all(held.map((s) => new Promise((r) => s.close(r))));
  }
}
