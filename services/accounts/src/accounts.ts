import { createBackgroundWork } from './domain/background-work';
import { keyringFromConfig } from '@shared/payload-crypto';
import { randomBytes } from 'node:crypto';
import type { Registry } from 'prom-client';
import type { Pool } from '@shared/db';
import type { Logger } from '@shared/logger';
import type { AccountsConfig } from './config';
import { systemClock, type Clock } from './domain/clock';
import { loadCommonPasswords } from './domain/common-passwords';
import type { DomainDeps } from './domain/deps';
import { createArgon2Hasher } from './domain/password-hasher';
import { createTokenService } from './domain/token-service';
import { createAccountsMetrics } from './metrics';

/**
 * Builds the use cases' dependencies from the config: what main.ts, the tests and the benchmark
 * share, so all three run the same wiring.
 */
export function createDomainDeps(opts: { config: AccountsConfig; logger: Logger; registry: Registry; pool: Pool; clock?: Clock }): DomainDeps & {
  commonPasswords: ReadonlySet<string>;
} {
  const { config, logger } = opts;
  const clock = opts.clock ?? systemClock;
  let secret = config.JWT_SECRET;
  if (secret === undefined) {
    // Development only (the config requires JWT_SECRET in production): tokens die with the process,
    // and two instances must be given the same JWT_SECRET to accept each other's tokens.
    secret = randomBytes(48).toString('base64url');
    logger.warn('JWT_SECRET is not set: using a random per-process secret (development only)');
  }
  return {
    pool: opts.pool,
    clock,
    config,
    logger,
    metrics: createAccountsMetrics(opts.registry),
    hasher: createArgon2Hasher({ memoryKib: config.ARGON2_MEMORY_KIB, timeCost: config.ARGON2_TIME_COST, parallelism: config.ARGON2_PARALLELISM }),
    tokens: createTokenService(
      { secret, issuer: config.JWT_ISSUER, audience: config.JWT_AUDIENCE, accessTtlS: config.JWT_ACCESS_TTL, refreshTtlS: config.JWT_REFRESH_TTL },
      clock,
    ),
    commonPasswords: loadCommonPasswords(),
    background: createBackgroundWork(),
    payloadKeys: keyringFromConfig(config, () =>
      logger.warn('MAIL_PAYLOAD_KEY is not set: using a random per-process key; a mailer started separately cannot read the codes (development only)'),
    ),
  };
}
