import type { NextFunction, Request, Response } from 'express';
import { errorBody } from '@shared/http';
import type { TokenService } from '../../domain/token-service';
import { InvalidTokenError } from '../../domain/errors';

/** 415 for a body that is not JSON (a request without a body passes: its fields are then missing). */
export function requireJsonBody(req: Request, res: Response, next: NextFunction): void {
  // type-is counts `Content-Length: 0` as a body; an empty POST (Bearer resend) has none.
  const length = req.headers['content-length'];
  const empty = length === '0' || (length === undefined && req.headers['transfer-encoding'] === undefined);
  if (!empty && !req.is('application/json')) {
    res.status(415).json(errorBody('unsupported_media_type', 'the request body must be application/json'));
    return;
  }
  next();
}

/**
 * Answers 503 `timeout` when a handler has not answered within `ms` (a stuck pool or query), so a
 * client never hangs until its own timeout. Prefer: wait stays far below it (≤ 10 s).
 */
export function requestTimeout(ms: number) {
  return (req: Request, res: Response, next: NextFunction): void => {
    const timer = setTimeout(() => {
      if (res.headersSent) return;
      req.log.error({ timeout_ms: ms }, 'request timed out');
      res.status(503).set('Retry-After', '5').json(errorBody('timeout', 'the request took too long; try again later'));
    }, ms);
    timer.unref();
    res.on('close', () => clearTimeout(timer));
    next();
  };
}

/** The user id of a valid `Authorization: Bearer <access token>`; throws 401 otherwise. */
export function bearerUserId(req: Request, tokens: TokenService): string {
  const header = req.header('authorization');
  const match = header ? /^Bearer ([A-Za-z0-9._~+/=-]+)$/.exec(header) : null;
  if (!match?.[1]) throw new InvalidTokenError();
  return tokens.verifyAccess(match[1]).userId;
}

/**
 * `Prefer: wait=N` (RFC 7240) in seconds, clamped to `max`; undefined when absent or malformed
 * (a preference the server does not understand is ignored, never an error).
 */
export function preferredWaitSeconds(header: string | undefined, max: number): number | undefined {
  if (!header) return undefined;
  for (const preference of header.split(',')) {
    const match = /^\s*wait\s*=\s*"?(\d{1,6})"?\s*(;.*)?$/i.exec(preference);
    if (match?.[1]) return Math.min(Number(match[1]), max);
  }
  return undefined;
}

/**
 * CORS for the browser origins of CORS_ORIGINS (an exact-match allowlist; none by default). An allowed
 * origin's preflight gets 204 with the methods and headers the API uses; its requests get the allow
 * header and `Retry-After` exposed (429/503 answers carry it). Any other origin gets no allow header,
 * so the browser refuses the response. No cookies are involved (Bearer tokens): no credentials flag.
 */
export function cors(origins: readonly string[]) {
  const allowed = new Set(origins);
  return (req: Request, res: Response, next: NextFunction): void => {
    const origin = req.header('origin');
    res.vary('Origin');
    if (!origin || !allowed.has(origin)) {
      next();
      return;
    }
    res.set({ 'Access-Control-Allow-Origin': origin, 'Access-Control-Expose-Headers': 'Retry-After' });
    if (req.method === 'OPTIONS' && req.header('access-control-request-method')) {
      res
        .status(204)
        .set({
          'Access-Control-Allow-Methods': 'GET, POST, OPTIONS',
          'Access-Control-Allow-Headers': 'authorization, content-type, prefer',
          'Access-Control-Max-Age': '600',
        })
        .end();
      return;
    }
    next();
  };
}
