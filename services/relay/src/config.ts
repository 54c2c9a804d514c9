import { z } from 'zod';
import { commonEnv, envInt, loadConfigOrExit, parseEnv, type Env } from '@shared/config';

const schema = z.object({
  ...commonEnv(3001),
  /** RELAY_POLL_INTERVAL_MS: fallback poll when no NOTIFY arrives (LISTEN is the fast path). */
  RELAY_POLL_INTERVAL_MS: envInt(500, 10, 60_000),
  /** RELAY_BATCH_SIZE: outbox rows claimed and published per round. */
  RELAY_BATCH_SIZE: envInt(500, 1, 10_000),
  /** KAFKA_TOPIC_PARTITIONS / KAFKA_REPLICATION_FACTOR: used when the relay creates missing topics. */
  KAFKA_TOPIC_PARTITIONS: envInt(6, 1, 1_000),
  KAFKA_REPLICATION_FACTOR: envInt(1, 1, 10),
  /** RELAY_RETRY_BASE_MS / RELAY_RETRY_MAX_MS: backoff while Kafka or PostgreSQL fail. */
  RELAY_RETRY_BASE_MS: envInt(200, 1, 60_000),
  RELAY_RETRY_MAX_MS: envInt(10_000, 1, 600_000),
  /** RELAY_MAX_ATTEMPTS: publish attempts of one row rejected for good before it is dead-lettered. */
  RELAY_MAX_ATTEMPTS: envInt(5, 1, 1_000),
});

export type RelayConfig = Readonly<z.infer<typeof schema>>;

export const parseRelayConfig = (env: Env): RelayConfig => parseEnv(schema, env);
export const loadRelayConfig = (): RelayConfig => loadConfigOrExit('relay', schema);
