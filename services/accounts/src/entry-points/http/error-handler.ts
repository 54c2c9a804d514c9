import type { NextFunction, Request, Response } from 'express';
import { isDatabaseUnavailable } from '@shared/db';
import { errorSummary } from '@shared/errors';
import { errorBody } from '@shared/http';
import { AccountsError, UnavailableError } from '../../domain/errors';

/**
 * The one place errors become responses, always in the contract's shape: domain errors carry their
 * status and code; PostgreSQL unreachable is 503 `unavailable`; body-parser failures are 400/413;
 * anything else is a 500 whose body says nothing about the cause (the log line has it).
 */
export function errorHandler(err: unknown, req: Request, res: Response, _next: NextFunction): void {
  if (res.headersSent) {
    req.log?.warn({ err: errorSummary(err) }, 'error after the response was sent');
    return;
  }
  const error = toAccountsError(err);
  if (error) {
    if (error.status >= 500) req.log?.error({ err: errorSummary(err) }, error.code);
    res
      .set(error.headers)
      .status(error.status)
      .json(errorBody(error.code, error.message, error.details));
    return;
  }
  const e = err as { type?: string; status?: number };
  if (e.type === 'entity.too.large') {
    res.status(413).json(errorBody('payload_too_large', 'request body exceeds 64 KiB'));
    return;
  }
  if (e.type === 'entity.parse.failed') {
    res.status(400).json(errorBody('invalid_json', 'request body is not valid JSON'));
    return;
  }
  if (e.type === 'encoding.unsupported' || e.type === 'charset.unsupported') {
    res.status(415).json(errorBody('unsupported_media_type', 'request body encoding is not supported'));
    return;
  }
  if (typeof e.status === 'number' && e.status >= 400 && e.status < 500) {
    res.status(e.status).json(errorBody('bad_request', 'the request could not be read'));
    return;
  }
  // Name, code and message only: a whole PostgreSQL error would log its detail (user data) and schema.
  req.log?.error({ err: errorSummary(err) }, 'unhandled error');
  res.status(500).json(errorBody('internal', 'internal error'));
}

function toAccountsError(err: unknown): AccountsError | null {
  if (err instanceof AccountsError) return err;
  if (isDatabaseUnavailable(err)) return new UnavailableError();
  return null;
}
