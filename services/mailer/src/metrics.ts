import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { ERROR_CLASSES, type ErrorClass } from '@shared/events';
import { LATENCY_BUCKETS } from '@shared/metrics';

export type SendResultLabel = 'sent' | 'deferred' | 'failed';
export type DlqReason = 'invalid_request' | 'rejected' | 'retries_exhausted';
export const DLQ_REASONS: readonly DlqReason[] = ['invalid_request', 'rejected', 'retries_exhausted'];

export type MailerMetrics = ReturnType<typeof createMailerMetrics>;

/**
 * The mailer's metrics on one instance's registry. Counters start at 0 for every known label value
 * so dashboards draw a line before the first event. `countRetryPending` is read at scrape time.
 */
export function createMailerMetrics(
  registry: Registry,
  countRetryPending: () => Promise<number>,
  providers: readonly string[] = ['primary'],
) {
  const m = registerMetrics(registry, countRetryPending);
  startAtZero(m, providers);
  const { sendDuration, sent, circuitState, fallbackActive, endToEnd, dlqRecords } = m;
  const { duplicateSends, invalidRequests, superseded } = m;
  return {
    /** One SMTP attempt's outcome on `provider` ('none' when no breaker admitted the mail). */
    observeSend: (
      result: SendResultLabel,
      errorClass: ErrorClass | 'none',
      seconds: number | undefined,
      provider = 'primary',
    ) => {
      sent.inc({ result, error_class: errorClass, provider });
      if (seconds !== undefined) sendDuration.observe({ result, provider }, seconds);
    },
    observeEndToEnd: (seconds: number) => endToEnd.observe(Math.max(0, seconds)),
    setCircuitState: (provider: string, state: 0 | 1 | 2) => circuitState.set({ provider }, state),
    setFallbackActive: (active: boolean) => fallbackActive.set(active ? 1 : 0),
    countDlqRecord: (reason: DlqReason) => dlqRecords.inc({ reason }),
    countDuplicateSend: () => duplicateSends.inc(),
    countInvalidRequest: () => invalidRequests.inc(),
    countSuperseded: (n: number) => superseded.inc(n),
  };
}

/** Every mailer metric on `registry`; mail_retry_pending is read at scrape time. */
function registerMetrics(registry: Registry, countRetryPending: () => Promise<number>) {
  const registers = [registry];
  const sendDuration = new Histogram({
    name: 'mail_send_duration_seconds',
    help: 'Duration of one SMTP send attempt on one provider, by result (sent, deferred, failed)',
    labelNames: ['result', 'provider'] as const,
    buckets: LATENCY_BUCKETS,
    registers,
  });
  const sent = new Counter({
    name: 'mail_sent_total',
    help:
      'SMTP attempt outcomes by result (sent, deferred, failed), error class ("none" when sent) ' +
      'and provider ("none": no breaker admitted it)',
    labelNames: ['result', 'error_class', 'provider'] as const,
    registers,
  });
  const circuitState = new Gauge({
    name: 'mail_smtp_circuit_state',
    help: 'SMTP circuit breaker per provider: 0 closed, 1 half-open, 2 open',
    labelNames: ['provider'] as const,
    registers,
  });
  const fallbackActive = new Gauge({
    name: 'mail_smtp_fallback_active',
    help: "1 while the primary SMTP provider's breaker is not closed and a fallback provider takes the mail",
    registers,
  });
  new Gauge({
    name: 'mail_retry_pending',
    help: 'Mail requests waiting for a retry after a failed attempt',
    registers,
    async collect() {
      try {
        this.set(await countRetryPending());
      } catch {
        // PostgreSQL down: keep the last value; /readyz reports the outage.
      }
    },
  });
  const endToEnd = new Histogram({
    name: 'mail_end_to_end_seconds',
    help: 'From the request being committed (requested_at) to SMTP acceptance',
    buckets: [...LATENCY_BUCKETS, 300, 900, 3600],
    registers,
  });
  const dlqRecords = new Counter({
    name: 'mail_dlq_records_total',
    help: 'Records written for mail.requests.dlq, by reason',
    labelNames: ['reason'] as const,
    registers,
  });
  const duplicateSends = new Counter({
    name: 'mail_duplicate_sends_total',
    help: 'Possible duplicates: sent again after a lease expired, sent after losing the claim, or by a fallback',
    registers,
  });
  const invalidRequests = new Counter({
    name: 'mail_invalid_requests_total',
    help: 'Poison mail.requests messages parked on the DLQ',
    registers,
  });
  const superseded = new Counter({
    name: 'mail_superseded_total',
    help: 'Unsent requests replaced by a newer request of the same user',
    registers,
  });

  return {
    sendDuration,
    sent,
    circuitState,
    fallbackActive,
    endToEnd,
    dlqRecords,
    duplicateSends,
    invalidRequests,
    superseded,
  };
}

/** Counters and gauges start at 0 for every known label value. */
function startAtZero(m: ReturnType<typeof registerMetrics>, providers: readonly string[]): void {
  const { sent, circuitState, fallbackActive, dlqRecords, duplicateSends, invalidRequests, superseded } = m;
  for (const provider of providers) {
    sent.inc({ result: 'sent', error_class: 'none', provider }, 0);
    for (const errorClass of ERROR_CLASSES) {
      if (errorClass === 'circuit_open') continue;
      sent.inc({ result: 'deferred', error_class: errorClass, provider }, 0);
      sent.inc({ result: 'failed', error_class: errorClass, provider }, 0);
    }
    circuitState.set({ provider }, 0);
  }
  sent.inc({ result: 'deferred', error_class: 'circuit_open', provider: 'none' }, 0);
  fallbackActive.set(0);
  for (const reason of DLQ_REASONS) dlqRecords.inc({ reason }, 0);
  duplicateSends.inc(0);
  invalidRequests.inc(0);
  superseded.inc(0);
}
