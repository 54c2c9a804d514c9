import type { ErrorClass } from '@shared/events';

/** Failures that say the provider cannot take mail at all, whoever the recipient: an outage. */
const UNREACHABLE: ReadonlySet<ErrorClass> = new Set<ErrorClass>(['timeout', 'connection', 'auth']);

/**
 * The outcomes of a provider's last `size` answered attempts, for a breaker rule that does not depend on
 * traffic volume. opossum judges the error rate over its rolling 10 s window of fired calls; after a
 * busy healthy spell that window is full of successes, so a provider that stopped answering was tried
 * again for several rounds of SMTP_TIMEOUT_MS before its breaker opened (measured: 3 s timeout, 10 mails
 * a second — three rounds, mail delayed up to 8.2 s; contract guarantee 5 allows about one timeout).
 * This window counts attempts, not seconds: when more than `thresholdPercent` of the last `size` found
 * the provider unreachable (timeout, connection, auth), `outage()` is true. Per-recipient answers (a
 * 4xx, a rejected address) count as answered, as do successes.
 */
export class RecentAttempts {
  private readonly outcomes: boolean[] = [];

  constructor(
    private readonly size: number,
    private readonly thresholdPercent: number,
  ) {}

  /** Records one answered attempt: its error class, or null for a success. */
  record(errorClass: ErrorClass | null): void {
    this.outcomes.push(errorClass !== null && UNREACHABLE.has(errorClass));
    if (this.outcomes.length > this.size) this.outcomes.shift();
  }

  /** The last `size` attempts (at least that many seen) mostly found the provider unreachable. */
  outage(): boolean {
    if (this.outcomes.length < this.size) return false;
    const down = this.outcomes.filter(Boolean).length;
    return (down / this.size) * 100 > this.thresholdPercent;
  }

  /** Forgets everything (the breaker changed state: a new period begins). */
  clear(): void {
    this.outcomes.length = 0;
  }
}
