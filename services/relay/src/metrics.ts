import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { LATENCY_BUCKETS } from '@shared/metrics';
import { TOPIC } from '@shared/topics';
import { BACKLOG_COUNT_CAP } from './data-access/outbox-repository';

/** The relay's metrics (names fixed by the contract and the dashboards); topic = contract topic name. */
export type RelayMetrics = ReturnType<typeof createRelayMetrics>;

export function createRelayMetrics(registry: Registry) {
  const registers = [registry];
  const metrics = {
    backlog: new Gauge({
      name: 'outbox_backlog',
      help:
        `Outbox rows not yet published, counted up to ${BACKLOG_COUNT_CAP} ` +
        '(stays there beyond; the age gauge has no cap)',
      registers,
    }),
    oldestAge: new Gauge({
      name: 'outbox_oldest_unpublished_age_seconds',
      help: 'Age of the oldest outbox row not yet published (0 when none)',
      registers,
    }),
    published: new Counter({
      name: 'outbox_published_total',
      help: 'Outbox rows acknowledged by the broker and deleted',
      labelNames: ['topic'] as const,
      registers,
    }),
    commitToPublish: new Histogram({
      name: 'outbox_commit_to_publish_seconds',
      help: 'From the outbox row insert to the broker acknowledgement',
      labelNames: ['topic'] as const,
      buckets: LATENCY_BUCKETS,
      registers,
    }),
    publishErrors: new Counter({
      name: 'outbox_publish_errors_total',
      help: 'Failed sends to Kafka (each failed produce call counts once per topic in it)',
      labelNames: ['topic'] as const,
      registers,
    }),
    deadLetters: new Counter({
      name: 'outbox_dead_letters_total',
      help: 'Outbox rows the broker rejected for good, moved to outbox_dead_letters',
      labelNames: ['topic'] as const,
      registers,
    }),
  };
  // Start every series at 0 so dashboards show a line before the first event.
  for (const topic of Object.values(TOPIC)) {
    metrics.published.inc({ topic }, 0);
    metrics.publishErrors.inc({ topic }, 0);
    metrics.deadLetters.inc({ topic }, 0);
  }
  return metrics;
}

/** Label value for a row's topic: unknown names collapse into one series (bounded cardinality). */
export function topicLabel(topic: string): string {
  return TOPIC_NAMES.has(topic) ? topic : 'unknown';
}

const TOPIC_NAMES: ReadonlySet<string> = new Set(Object.values(TOPIC));
