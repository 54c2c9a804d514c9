import { z } from 'zod';
import { commonEnv, envInt, loadConfigOrExit, parseEnv, type Env } from '@shared/config';

const schema = z
  .object({
    ...commonEnv(3001),
    /** RELAY_POLL_INTERVAL_MS: fallback poll when no NOTIFY arrives (LISTEN is the fast path). */
    RELAY_POLL_INTERVAL_MS: envInt(500, 10, 600_000),
    /**
     * RELAY_BATCH_SIZE: outbox rows claimed and published per round (at most). A round sends one produce
     * request per partition, so 3,000 over the contract's 6 partitions is ~500 records per request under
     * a backlog (bench: 0.54 of the raw producer at 500, 0.73-0.85 at 3,000); one registration's rows
     * still go out alone, at once.
     */
    RELAY_BATCH_SIZE: envInt(3_000, 1, 10_000),
    /** RELAY_CONCURRENCY: claim-publish-delete loops per instance (each its own transaction). */
    RELAY_CONCURRENCY: envInt(2, 1, 16),
    /** RELAY_RETRY_BASE_MS / RELAY_RETRY_MAX_MS: exponential backoff (with jitter) while Kafka or PostgreSQL fail. */
    RELAY_RETRY_BASE_MS: envInt(200, 1, 60_000),
    RELAY_RETRY_MAX_MS: envInt(10_000, 1, 600_000),
    /** RELAY_GAUGE_INTERVAL_MS: how often outbox_backlog and outbox_oldest_unpublished_age_seconds are refreshed. */
    RELAY_GAUGE_INTERVAL_MS: envInt(1_000, 100, 60_000),
  })
  .refine((c) => c.RELAY_RETRY_MAX_MS >= c.RELAY_RETRY_BASE_MS, {
    path: ['RELAY_RETRY_MAX_MS'],
    message: 'must be >= RELAY_RETRY_BASE_MS',
  });

export type RelayConfig = Readonly<z.infer<typeof schema>>;

export const parseRelayConfig = (env: Env): RelayConfig => parseEnv(schema, env);
export const loadRelayConfig = (): RelayConfig => loadConfigOrExit('relay', schema);
