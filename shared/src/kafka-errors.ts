import { isRetriable } from './errors';

// Shared by every service that publishes with an idempotent kafkajs producer: the relay and the
// mailer's status publisher decide reset / retry / dead-letter from it.

/**
 * What a failed send means for the rows in it:
 * - `rejected`: the broker refused these very records and would refuse the same bytes again
 *   (e.g. MESSAGE_TOO_LARGE): dead-letter them, do not block the rows behind.
 * - `producer_state`: the idempotent producer's sequence/epoch no longer matches the broker's: start a
 *   new producer (a new producer id), then retry.
 * - `transient`: anything else (broker down, leader moving, timeouts): keep the rows, back off, retry.
 */
export type PublishErrorKind = 'rejected' | 'producer_state' | 'transient';

/**
 * Record-level refusals. A non-retriable code about the cluster (authorization, unsupported version)
 * stays `transient` on purpose: it would otherwise dead-letter the whole outbox on a misconfiguration.
 */
const RECORD_REJECTIONS = new Set([
  'MESSAGE_TOO_LARGE',
  'RECORD_LIST_TOO_LARGE',
  'INVALID_RECORD',
  'CORRUPT_MESSAGE',
  'INVALID_TIMESTAMP',
]);
const PRODUCER_STATE = new Set([
  'OUT_OF_ORDER_SEQUENCE_NUMBER',
  'UNKNOWN_PRODUCER_ID',
  'INVALID_PRODUCER_EPOCH',
  'INVALID_PRODUCER_ID_MAPPING',
]);

export function classifyPublishError(err: unknown): PublishErrorKind {
  const root = rootCause(err);
  const type = root && typeof root === 'object' ? (root as { type?: unknown }).type : undefined;
  if (typeof type !== 'string') return 'transient';
  if (PRODUCER_STATE.has(type)) return 'producer_state';
  // kafkajs wraps a broker's answer in KafkaJSNonRetriableError / KafkaJSNumberOfRetriesExceeded, both
  // `retriable: false`; the broker's own verdict is the root cause's `retriable`.
  if (RECORD_REJECTIONS.has(type) && !isRetriable(root)) return 'rejected';
  return 'transient';
}

/** The innermost `cause` of a kafkajs error chain. */
export function rootCause(err: unknown): unknown {
  let current = err;
  for (let depth = 0; depth < 10; depth++) {
    const cause = current && typeof current === 'object' ? (current as { cause?: unknown }).cause : undefined;
    if (!cause || cause === current) break;
    current = cause;
  }
  return current;
}
