import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Express } from 'express';
import { OPENAPI_FILE } from '../src/entry-points/http/routes';
import { withTestAccounts } from './support/accounts-app';

type Layer = { route?: { path: string; methods: Record<string, boolean> } };

/** Every `METHOD path` the express app serves (express 5 keeps them on app.router.stack). */
function servedRoutes(app: Express): string[] {
  const stack = (app as unknown as { router: { stack: Layer[] } }).router.stack;
  return stack
    .flatMap((layer) =>
      layer.route
        ? Object.keys(layer.route.methods)
            .filter((m) => m !== '_all')
            .map((m) => `${m.toUpperCase()} ${layer.route?.path}`)
        : [],
    )
    .sort();
}

describe('GET /api/v1/openapi.json', () => {
  const { accounts } = withTestAccounts();

  test('serves the OpenAPI 3.1 document of the service', async () => {
    const res = await accounts.http.get('/api/v1/openapi.json');

    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.body.openapi).toBe('3.1.0');
    expect(res.body).toEqual(JSON.parse(readFileSync(OPENAPI_FILE, 'utf8')));
  });

  test('documents every route the app serves, and serves every route it documents', async () => {
    const doc = (await accounts.http.get('/api/v1/openapi.json')).body as {
      paths: Record<string, Record<string, unknown>>;
    };
    const documented = Object.entries(doc.paths)
      .flatMap(([path, ops]) => Object.keys(ops).map((method) => `${method.toUpperCase()} ${path}`))
      .sort();

    expect(servedRoutes(accounts.app)).toEqual(documented);
  });

  test('documents every error code each operation can answer with', () => {
    const text = readFileSync(OPENAPI_FILE, 'utf8');
    for (const code of [
      'validation_failed',
      'invalid_referral_code',
      'email_taken',
      'unavailable',
      'invalid_credentials',
      'too_many_attempts',
      'token_reused',
      'invalid_token',
      'token_expired',
      'invalid_code',
      'code_expired',
      'already_confirmed',
      'resend_cooldown',
      'invalid_json',
      'payload_too_large',
      'unsupported_media_type',
      'too_many_registrations',
    ]) {
      expect(text).toContain(code);
    }
  });

  test("declares each operation's security: Bearer where the route checks a token, `security: []` where it is public", () => {
    const doc = JSON.parse(readFileSync(OPENAPI_FILE, 'utf8')) as {
      paths: Record<string, Record<string, { security?: Record<string, string[]>[] }>>;
    };
    const declared = Object.entries(doc.paths).flatMap(([p, ops]) =>
      Object.entries(ops).map(([m, op]) => [`${m.toUpperCase()} ${p}`, op.security]),
    );
    expect(Object.fromEntries(declared)).toEqual({
      'POST /api/v1/usr/register': [],
      'POST /api/v1/usr/login': [],
      'POST /api/v1/usr/token/refresh': [],
      'POST /api/v1/usr/email/confirm': [{ bearerAuth: [] }],
      'POST /api/v1/usr/email/resend': [{ bearerAuth: [] }, {}],
      'GET /api/v1/usr/email/status': [{ bearerAuth: [] }],
      'GET /api/v1/openapi.json': [],
      'GET /healthz': [],
    });
  });

  test('passes `redocly lint` with the recommended rules without an error, offline (what npm run lint runs)', () => {
    const root = path.resolve(__dirname, '..', '..', '..');
    const run = spawnSync(
      process.execPath,
      [
        path.join(root, 'node_modules', '@redocly', 'cli', 'bin', 'cli.js'),
        'lint',
        '--extends=recommended',
        '--format=stylish',
        OPENAPI_FILE,
      ],
      {
        cwd: root,
        encoding: 'utf8',
        env: {
          PATH: process.env.PATH ?? '',
          HOME: process.env.HOME ?? '',
          REDOCLY_TELEMETRY: 'off',
          REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true',
        },
        timeout: 60_000,
      },
    );
    expect({
      status: run.status,
      errors: `${run.stdout}${run.stderr}`.split('\n').filter((l) => /\berror\b/.test(l)),
    }).toEqual({ status: 0, errors: [] });
  });
});
