import { Writable } from 'node:stream';
import express from 'express';
import request from 'supertest';
import { DatabaseError } from 'pg';
import { createLogger } from '@shared/logger';
import { errorHandler } from './error-handler';

describe('errorHandler logging', () => {
  it(
    'when a PostgreSQL error escapes a handler, the log line names its name, code and message, never its ' +
      'detail, where or query',
    async () => {
      const lines: string[] = [];
      const logger = createLogger({
        service: 'test',
        destination: new Writable({
          write(chunk: Buffer, _enc, cb) {
            lines.push(chunk.toString());
            cb();
          },
        }),
      });
      const pgError = Object.assign(
        new DatabaseError('duplicate key value violates unique constraint "users_email_lower_key"', 120, 'error'),
        {
          code: '23505',
          detail: 'Key (lower(email))=(ada.private@example.com) already exists.',
          where: 'SQL function "secret_schema_fn" statement 1',
          internalQuery: 'SELECT hidden_column FROM hidden_table',
          schema: 'public',
          table: 'users',
        },
      );
      const app = express();
      app.use((req, _res, next) => {
        req.log = logger;
        next();
      });
      app.get('/boom', () => {
        throw pgError;
      });
      app.use(errorHandler);

      const res = await request(app).get('/boom');

      expect(res.status).toBe(500);
      expect(res.body).toEqual({ error: { code: 'internal', message: 'internal error' } });
      const entry = JSON.parse(lines.join('')) as { err: Record<string, unknown> };
      expect(entry.err).toMatchObject({
        name: 'error',
        code: '23505',
        message: 'duplicate key value violates unique constraint "users_email_lower_key"',
      });
      for (const key of ['detail', 'where', 'internalQuery', 'schema', 'table', 'length', 'severity'])
        expect(entry.err).not.toHaveProperty(key);
      expect(lines.join('')).not.toMatch(/ada\.private|secret_schema_fn|hidden_table/);
    },
  );
});
