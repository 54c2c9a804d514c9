import { performance } from 'node:perf_hooks';
import { errorMessage } from '@shared/errors';
import type { Logger } from '@shared/logger';
import type { ClaimedRequest } from '../data-access/requests-repository';
import type { Delivery } from '../domain/deliver-context';
import type { CircuitState } from '../domain/smtp-circuit';

/**
 * How long the rows claimed ahead should last at SMTP's current pace: the last one waits about this
 * long for a free connection (a few ms per mail on a healthy server: the whole queue; a slow one: none).
 */
export const QUEUE_BUDGET_MS = 50;

export type SendSlotsOptions = {
  deliver: (claim: ClaimedRequest) => Promise<Delivery>;
  circuitState: () => CircuitState;
  /** SMTP connections: at most this many sends in SMTP at once (one while half-open). */
  concurrency: number;
  /** Most rows claimed ahead of a free connection. */
  claimAhead: number;
  /** Outcomes SMTP answered but not yet recorded: at this many, claiming stops until the recorder catches up. */
  maxUnrecorded: number;
  /** A claimed row that waited longer than this for a connection is not sent (the dispatcher gives it back). */
  maxQueueMs: number;
  /** A send ended or an outcome got recorded: room to claim may have opened. */
  onProgress: () => void;
  /** The oldest queued row waited too long: the dispatcher should take it back. */
  onStale: () => void;
  logger: Logger;
};

type Queued = { claim: ClaimedRequest; claimedAt: number };

/**
 * The dispatcher's local state: claimed rows waiting for a connection (a FIFO), sends in SMTP, and
 * outcomes SMTP answered whose recording is still running. A connection is free again when SMTP
 * answers, not when the outcome commits. Recordings are tracked (bounded by `maxUnrecorded`) and
 * awaited by settle(), so a graceful stop records every outcome.
 */
export class SendSlots {
  private readonly queue: Queued[] = [];
  private readonly sends = new Set<Promise<void>>();
  private readonly recordings = new Set<Promise<void>>();
  /** Moving average of one send's duration in SMTP (ms); unknown until the first answer. */
  private sendMs: number | undefined;
  private stopped = false;

  constructor(private readonly opts: SendSlotsOptions) {}

  /** Queues freshly claimed rows and starts what the free connections take. */
  add(claims: ClaimedRequest[]): void {
    const claimedAt = performance.now();
    for (const claim of claims) this.queue.push({ claim, claimedAt });
    this.feed();
  }

  /** Hands queued rows to free connections, oldest first; stops at a row that waited too long. */
  feed(): void {
    while (!this.stopped && this.queue[0] && this.sends.size < this.slots()) {
      if (this.isStale(this.queue[0])) {
        this.opts.onStale();
        return;
      }
      this.start((this.queue.shift() as Queued).claim);
    }
  }

  /**
   * How many rows to claim now. None while open, stopped, or with `maxUnrecorded` outcomes unrecorded;
   * half-open: one trial, nothing ahead; closed: refill to the connections plus the rows ahead once
   * half of those are used (one claim per batch of mails, not one per freed connection).
   */
  claimLimit(state: CircuitState): number {
    if (this.stopped || state === 'open' || this.recordings.size >= this.opts.maxUnrecorded) return 0;
    const busy = this.sends.size + this.queue.length;
    if (state === 'half-open') return Math.max(0, 1 - busy);
    const ahead = this.ahead();
    if (this.queue.length > ahead / 2) return 0;
    return Math.max(0, this.opts.concurrency + ahead - busy);
  }

  /** Removes and returns the queued rows that waited longer than `maxQueueMs`. */
  takeStale(): ClaimedRequest[] {
    const stale: ClaimedRequest[] = [];
    while (this.queue[0] && this.isStale(this.queue[0])) stale.push((this.queue.shift() as Queued).claim);
    return stale;
  }

  /** Removes and returns every queued row. */
  takeQueued(): ClaimedRequest[] {
    return this.queue.splice(0).map((q) => q.claim);
  }

  /** No further send starts; returns the rows still queued (claimed, never sent). */
  stop(): ClaimedRequest[] {
    this.stopped = true;
    return this.takeQueued();
  }

  /** Waits for the sends in SMTP, then for every outcome's recording. */
  async settle(): Promise<void> {
    await Promise.allSettled([...this.sends]);
    await Promise.allSettled([...this.recordings]);
  }

  private slots(): number {
    const state = this.opts.circuitState();
    return state === 'closed' ? this.opts.concurrency : state === 'half-open' ? 1 : 0;
  }

  /** Rows to hold beyond the connections: none until SMTP's pace is known, then QUEUE_BUDGET_MS worth of it. */
  private ahead(): number {
    if (this.sendMs === undefined) return 0;
    const worth = Math.floor((this.opts.concurrency * QUEUE_BUDGET_MS) / Math.max(this.sendMs, 0.1));
    return Math.min(this.opts.claimAhead, worth);
  }

  private isStale(q: Queued): boolean {
    return performance.now() - q.claimedAt > this.opts.maxQueueMs;
  }

  private start(claim: ClaimedRequest): void {
    const began = performance.now();
    const send: Promise<void> = this.opts
      .deliver(claim)
      .then(
        (delivery) => this.track(delivery.recorded),
        (err: unknown) =>
          this.opts.logger.error(
            { request_id: claim.requestId, err: { message: errorMessage(err) } },
            'delivery crashed',
          ),
      )
      .finally(() => {
        this.sends.delete(send);
        const ms = performance.now() - began;
        this.sendMs = this.sendMs === undefined ? ms : 0.9 * this.sendMs + 0.1 * ms;
        this.feed();
        this.opts.onProgress();
      });
    this.sends.add(send);
  }

  private track(recorded: Promise<void>): void {
    const recording: Promise<void> = recorded
      .catch((err: unknown) =>
        this.opts.logger.error({ err: { message: errorMessage(err) } }, 'recording an outcome crashed'),
      )
      .finally(() => {
        this.recordings.delete(recording);
        this.opts.onProgress();
      });
    this.recordings.add(recording);
  }
}
