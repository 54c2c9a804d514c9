import express, { type Express } from 'express';
import type { Registry } from 'prom-client';
import { mountHealthz, notFoundHandler, observability, securityHeaders } from '@shared/http';
import type { DomainDeps } from '../../domain/deps';
import { errorHandler } from './error-handler';
import { cors, requestTimeout } from './middleware';
import { mountApiRoutes } from './routes';

export type AccountsAppDeps = DomainDeps & {
  registry: Registry;
  commonPasswords: ReadonlySet<string>;
  requestTimeoutMs?: number;
};

/**
 * The accounts HTTP API: JSON only, 64 KiB body limit, every error in the contract's shape. It serves
 * /healthz but never /metrics or /readyz: those are on the ops listener (OPS_PORT), because the
 * per-outcome counters of the anonymous resend would tell anyone which addresses have accounts.
 */
export function createAccountsApp(deps: AccountsAppDeps): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  // TRUST_PROXY: whether X-Forwarded-For names the client (req.ip); off, the peer address is the client.
  app.set('trust proxy', deps.config.TRUST_PROXY);
  app.use(observability(deps));
  app.use(securityHeaders);
  app.use(cors(deps.config.CORS_ORIGINS));
  app.use(requestTimeout(deps.requestTimeoutMs ?? 25_000));
  mountHealthz(app);
  app.use(express.json({ limit: '64kb', strict: true }));
  mountApiRoutes(app, deps);
  app.use(notFoundHandler);
  app.use(errorHandler);
  return app;
}
