import express, { type Express } from 'express';
import type { Registry } from 'prom-client';
import { mountOpsRoutes, notFoundHandler, observability, type ReadinessCheck } from '@shared/http';
import type { DomainDeps } from '../../domain/deps';
import { errorHandler } from './error-handler';
import { requestTimeout, securityHeaders } from './middleware';
import { mountApiRoutes } from './routes';

export type AccountsAppDeps = DomainDeps & { registry: Registry; checks: ReadinessCheck[]; commonPasswords: ReadonlySet<string>; requestTimeoutMs?: number };

/** The accounts HTTP API: JSON only, 64 KiB body limit, every error in the contract's shape. */
export function createAccountsApp(deps: AccountsAppDeps): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.use(observability(deps));
  app.use(securityHeaders);
  app.use(requestTimeout(deps.requestTimeoutMs ?? 25_000));
  mountOpsRoutes(app, deps);
  app.use(express.json({ limit: '64kb', strict: true }));
  mountApiRoutes(app, deps);
  app.use(notFoundHandler);
  app.use(errorHandler);
  return app;
}
