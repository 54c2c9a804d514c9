import express, { type Express, type NextFunction, type Request, type Response } from 'express';
import type { Registry } from 'prom-client';
import type { Logger } from '@shared/logger';
import { errorBody, mountOpsRoutes, notFoundHandler, observability, type ReadinessCheck } from '@shared/http';

export type AccountsAppDeps = { logger: Logger; registry: Registry; checks: ReadinessCheck[] };

/** The accounts HTTP API: JSON only, 64 KiB body limit, every error in the contract's shape. */
export function createAccountsApp(deps: AccountsAppDeps): Express {
  const app = express();
  app.disable('x-powered-by');
  app.use(observability(deps));
  mountOpsRoutes(app, deps);
  app.use(express.json({ limit: '64kb', strict: true }));
  app.use(notFoundHandler);
  app.use(jsonErrorHandler);
  return app;
}

/** Maps body-parser failures to the contract's errors; anything unexpected is a 500 without details. */
export function jsonErrorHandler(err: unknown, req: Request, res: Response, _next: NextFunction): void {
  const e = err as { type?: string; status?: number };
  if (e.type === 'entity.too.large') {
    res.status(413).json(errorBody('payload_too_large', 'request body exceeds 64 KiB'));
    return;
  }
  if (e.type === 'entity.parse.failed') {
    res.status(400).json(errorBody('invalid_json', 'request body is not valid JSON'));
    return;
  }
  if (typeof e.status === 'number' && e.status >= 400 && e.status < 500) {
    res.status(e.status).json(errorBody('bad_request', 'the request could not be read'));
    return;
  }
  req.log?.error({ err }, 'unhandled error');
  res.status(500).json(errorBody('internal', 'internal error'));
}
