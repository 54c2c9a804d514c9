import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { createLogger } from '@shared/logger';
import type { ClaimedRequest } from '../../src/data-access/requests-repository';
import type { Delivery } from '../../src/domain/deliver-context';
import type { CircuitState } from '../../src/domain/smtp-circuit';
import { createDispatcher, type Dispatcher, type DispatcherOptions } from '../../src/entry-points/dispatcher';

/*
 * The dispatcher against fakes (its unit tests): a claim store over an in-memory list of due rows and a
 * deliver whose SMTP answer and recording the test releases by hand.
 */

export const claimOf = (): ClaimedRequest => ({
  requestId: randomUUID(),
  userId: randomUUID(),
  recipient: 'ada@example.test',
  template: 'email_confirmation',
  vars: { code: 'sealed' },
  requestedAt: null,
  receivedAt: new Date(),
  original: '',
  attempts: 1,
  generation: 0,
  claimId: randomUUID(),
  possibleDuplicate: false,
});

type Deferred = { promise: Promise<void>; resolve: () => void };
const deferred = (): Deferred => {
  let resolve: () => void = () => undefined;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
};

/** Lets every pending promise chain and immediate run (a few event-loop turns). */
export const settleTurns = async (turns = 20) => {
  for (let i = 0; i < turns; i++) await new Promise((r) => setImmediate(r));
};

/** Stops every dispatcher a test started, even one that failed midway (a running loop keeps jest alive). */
const cleanups: (() => Promise<void>)[] = [];
export async function stopDispatchers(): Promise<void> {
  for (const cleanup of cleanups.splice(0)) await cleanup();
}

export function fixture(rows: number, overrides: Partial<DispatcherOptions> = {}) {
  const due = Array.from({ length: rows }, claimOf);
  const claimed: ClaimedRequest[] = [];
  const limits: number[] = [];
  const released: ClaimedRequest[] = [];
  const delivered: ClaimedRequest[] = [];
  const answers: Deferred[] = [];
  const recordings: Deferred[] = [];
  let state: CircuitState = 'closed';
  /**
   * How sends behave: the first `answerAtOnce` answer at once, later ones wait for the test
   * (answers[i].resolve()); recordings settle at once unless `holdRecording`.
   */
  const smtp = { answerAtOnce: Number.POSITIVE_INFINITY, holdRecording: false };
  const logger = createLogger({
    service: 'mailer',
    level: 'silent',
    destination: new Writable({ write: (_c, _e, done) => done() }),
  });
  const dispatcher: Dispatcher = createDispatcher({
    claims: {
      claim: async (limit) => {
        limits.push(limit);
        const taken = due.splice(0, limit);
        claimed.push(...taken);
        return taken;
      },
      release: async (claims) => {
        released.push(...claims);
        return claims.length;
      },
    },
    deliver: async (claim): Promise<Delivery> => {
      delivered.push(claim);
      const answer = deferred();
      answers.push(answer);
      if (delivered.length <= smtp.answerAtOnce) answer.resolve();
      await answer.promise;
      const recording = deferred();
      recordings.push(recording);
      if (!smtp.holdRecording) recording.resolve();
      return { recorded: recording.promise };
    },
    circuitState: () => state,
    concurrency: 2,
    claimAhead: 8,
    maxUnrecorded: 6,
    maxQueueMs: 60_000,
    pollMs: 50,
    logger,
    ...overrides,
  });
  const answerAll = () => {
    smtp.answerAtOnce = Number.POSITIVE_INFINITY;
    answers.forEach((a) => a.resolve());
  };
  cleanups.push(async () => {
    smtp.holdRecording = false;
    answerAll();
    recordings.forEach((r) => r.resolve());
    await dispatcher.stop();
  });
  return {
    due,
    claimed,
    limits,
    released,
    delivered,
    answers,
    recordings,
    smtp,
    dispatcher,
    setState: (s: CircuitState) => {
      state = s;
      dispatcher.kick();
    },
    /** Every send answers from now on (held ones too), so stop() can finish. */
    answerAll,
    queued: () => claimed.filter((c) => !delivered.includes(c) && !released.includes(c)),
  };
}
