import type { Logger } from '@shared/logger';
import type { Pool } from '@shared/db';
import type { PayloadKeyring } from '@shared/payload-crypto';
import type { AccountsConfig } from '../config';
import type { AccountsMetrics } from '../metrics';
import type { BackgroundWork } from './background-work';
import type { Clock } from './clock';
import type { MailOutage } from './mail-outage';
import type { PasswordHasher } from './password-hasher';
import type { TokenService } from './token-service';

/** What the use cases need, passed explicitly (two instances in one process share nothing). */
export type DomainDeps = {
  pool: Pool;
  hasher: PasswordHasher;
  tokens: TokenService;
  clock: Clock;
  config: AccountsConfig;
  metrics: AccountsMetrics;
  logger: Logger;
  /** Work finished after a response (drained at shutdown before the pool closes). */
  background: BackgroundWork;
  /** Seals the confirmation code for the mailer (MAIL_PAYLOAD_KEY). */
  payloadKeys: PayloadKeyring;
  /** A mail outage known from the consumed delivery statuses (ends REGISTER_WAIT_MS / Prefer waits at once). */
  mailOutage: MailOutage;
};
