import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express, { type Express, type NextFunction, type Request, type Response } from 'express';
import type { Registry } from 'prom-client';
import type { Logger } from './logger';
import { createHttpDurationHistogram } from './metrics';

/** A named dependency probe for /readyz; it throws (or rejects) when the dependency does not answer. */
export type ReadinessCheck = { name: string; check: () => Promise<void> };

declare module 'express-serve-static-core' {
  interface Request {
    /** Correlates every log line of one request (from X-Request-Id when the caller sent a sane one). */
    id: string;
    log: Logger;
  }
}

/** The contract's error body: `{"error": {"code", "message", "details"?}}`. */
export type ErrorBody = { error: { code: string; message: string; details?: unknown[] } };

export function errorBody(code: string, message: string, details?: unknown[]): ErrorBody {
  return { error: details && details.length > 0 ? { code, message, details } : { code, message } };
}

/**
 * Request id + request logging + http_request_duration_seconds. The route label is the matched
 * route template (never the raw URL, which would explode the label set).
 */
export function observability(opts: { logger: Logger; registry: Registry }) {
  const histogram = createHttpDurationHistogram(opts.registry);
  return (req: Request, res: Response, next: NextFunction): void => {
    const incoming = req.header('x-request-id');
    req.id = incoming && /^[\w.-]{1,128}$/.test(incoming) ? incoming : randomUUID();
    req.log = opts.logger.child({ request_id: req.id });
    res.setHeader('X-Request-Id', req.id);
    const started = process.hrtime.bigint();
    res.on('finish', () => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const route = req.route?.path ? `${req.baseUrl}${String(req.route.path)}` : 'unmatched';
      histogram.observe({ method: req.method, route, status_code: String(res.statusCode) }, seconds);
      const level = res.statusCode >= 500 ? 'error' : res.statusCode >= 400 ? 'warn' : 'info';
      if (route === '/metrics' || route === '/healthz' || route === '/readyz') return;
      req.log[level](
        { method: req.method, route, status: res.statusCode, duration_ms: Math.round(seconds * 1000) },
        'request',
      );
    });
    next();
  };
}

/** The usual API security headers (what helmet would set for a JSON API, without the dependency). */
export function securityHeaders(_req: Request, res: Response, next: NextFunction): void {
  res.set({
    'Content-Security-Policy': "default-src 'none'; frame-ancestors 'none'",
    'Cross-Origin-Resource-Policy': 'same-origin',
    'Referrer-Policy': 'no-referrer',
    'Strict-Transport-Security': 'max-age=31536000; includeSubDomains',
    'X-Content-Type-Options': 'nosniff',
    'X-Frame-Options': 'DENY',
    'Cache-Control': 'no-store',
  });
  next();
}

/** GET /healthz: the process is alive. */
export function mountHealthz(app: Express): void {
  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
}

/**
 * GET /healthz (process alive), GET /readyz (every check answers, else 503), GET /metrics.
 * /readyz names the failing dependency only: its error text (host names, SQL states) goes to the log.
 */
export function mountOpsRoutes(
  app: Express,
  opts: { registry: Registry; checks: ReadinessCheck[]; checkTimeoutMs?: number },
): void {
  mountHealthz(app);
  app.get('/readyz', async (req, res) => {
    const results = await Promise.all(
      opts.checks.map(async ({ name, check }) => {
        try {
          await withTimeout(check(), opts.checkTimeoutMs ?? 2_000, `${name} did not answer in time`);
          return { name, ok: true };
        } catch (err) {
          req.log.warn(
            { check: name, err: { message: err instanceof Error ? err.message : String(err) } },
            'readiness check failed',
          );
          return { name, ok: false };
        }
      }),
    );
    const ready = results.every((r) => r.ok);
    res.status(ready ? 200 : 503).json({ status: ready ? 'ready' : 'not_ready', checks: results });
  });
  app.get('/metrics', async (_req, res) => {
    res.setHeader('Content-Type', opts.registry.contentType);
    res.send(await opts.registry.metrics());
  });
}

/** A small express app for the relay, the mailer and accounts' ops port: observability + ops routes + JSON 404. */
export function createOpsApp(opts: { logger: Logger; registry: Registry; checks: ReadinessCheck[] }): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.use(observability(opts));
  app.use(securityHeaders);
  mountOpsRoutes(app, opts);
  app.use(notFoundHandler);
  return app;
}

export function notFoundHandler(_req: Request, res: Response): void {
  res.status(404).json(errorBody('not_found', 'no such route'));
}

export type HttpServer = { server: Server; port: number; url: string; close: () => Promise<void> };

/**
 * Listens on `port` (0 = any free port) and returns a close() that stops accepting, lets in-flight
 * requests finish (up to `drainMs`), then cuts idle keep-alive connections.
 */
export async function listen(app: Express, port: number, host = '0.0.0.0', drainMs = 10_000): Promise<HttpServer> {
  // http.createServer + 'error' rather than app.listen: express 5 hands a listen error (EADDRINUSE)
  // to the callback, which would otherwise resolve with a server that is not listening.
  const server = createServer(app);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.keepAliveTimeout = 5_000;
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  const actual = (server.address() as AddressInfo).port;
  return {
    server,
    port: actual,
    url: `http://127.0.0.1:${actual}`,
    close: () =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(() => server.closeAllConnections(), drainMs);
        timer.unref();
        server.close(() => {
          clearTimeout(timer);
          resolve();
        });
        server.closeIdleConnections();
      }),
  };
}

export function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * An HTTP listener as a lifecycle component: `createApp` is called at start (so readiness checks see
 * the started parts), the server listens on `port`, and stop closes it (draining open requests).
 */
export function httpComponent(opts: {
  name: string;
  port: number;
  host?: string;
  createApp: () => Express;
  onListening?: (server: HttpServer) => void;
}): { name: string; start: () => Promise<void>; stop: () => Promise<void> } {
  let http: HttpServer | undefined;
  return {
    name: opts.name,
    start: async () => {
      http = await listen(opts.createApp(), opts.port, opts.host);
      opts.onListening?.(http);
    },
    stop: async () => http?.close(),
  };
}
