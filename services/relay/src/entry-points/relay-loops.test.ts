import { Writable } from 'node:stream';
import { createLogger } from '@shared/logger';
import { createRelayLoops } from './relay-loops';

const logger = createLogger({
  service: 'test',
  level: 'silent',
  destination: new Writable({ write: (_c, _e, done) => done() }),
});

/** Loops over a scripted round: each call takes the next count (0 once the script is used up). */
function scripted(handled: number[], concurrency = 2) {
  let calls = 0;
  const loops = createRelayLoops({
    round: async () => {
      calls += 1;
      return handled.shift() ?? 0;
    },
    concurrency,
    batchSize: 500,
    pollIntervalMs: 60_000,
    requeryDelayMs: 5,
    backoff: { baseMs: 60_000, maxMs: 60_000 },
    logger,
  });
  return { loops, calls: () => calls };
}

const settle = () => new Promise((r) => setTimeout(r, 100));

describe('relay loops: what a NOTIFY costs', () => {
  it('when a commit wakes two idle loops, then one round claims its rows and no other round runs', async () => {
    const { loops, calls } = scripted([0, 0, 2]);
    await loops.start();
    await settle();
    expect(calls()).toBe(2); // each loop's first look at start
    loops.wake();
    await settle();
    expect(calls()).toBe(3);
    await loops.stop();
  });

  it('when a wake-up finds nothing (the NOTIFY beat visibility), then it looks once more, then waits', async () => {
    const { loops, calls } = scripted([0, 0, 0, 2]);
    await loops.start();
    await settle();
    loops.wake();
    await settle();
    expect(calls()).toBe(4);
    await loops.stop();
  });

  it('when a round fills its batch, then it goes again at once and wakes an idle sibling', async () => {
    const { loops, calls } = scripted([0, 0, 500, 500, 120]);
    await loops.start();
    await settle();
    loops.wake();
    await settle();
    // 2 at start; after the wake-up: 500 (wakes the sibling), then 500 and 120 side by side, then the
    // full one's look that finds nothing. The one woken by a sibling does not requery.
    expect(calls()).toBe(6);
    await loops.stop();
  });
});
