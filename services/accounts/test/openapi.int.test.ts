import { readFileSync } from 'node:fs';
import type { Express } from 'express';
import { createTestDatabase, type TestDatabase } from '../../../test/support/infra';
import { OPENAPI_FILE } from '../src/entry-points/http/routes';
import { startTestAccounts, type TestAccounts } from './support/accounts-app';

type Layer = { route?: { path: string; methods: Record<string, boolean> } };

/** Every `METHOD path` the express app serves (express 5 keeps them on app.router.stack). */
function servedRoutes(app: Express): string[] {
  const stack = (app as unknown as { router: { stack: Layer[] } }).router.stack;
  return stack
    .flatMap((layer) => (layer.route ? Object.keys(layer.route.methods).filter((m) => m !== '_all').map((m) => `${m.toUpperCase()} ${layer.route?.path}`) : []))
    .sort();
}

describe('GET /api/v1/openapi.json', () => {
  let db: TestDatabase;
  let accounts: TestAccounts;

  beforeAll(async () => {
    db = await createTestDatabase();
    accounts = startTestAccounts({ databaseUrl: db.url });
  });
  afterAll(async () => {
    await accounts.close();
    await db.drop();
  });

  test('serves the OpenAPI 3.1 document of the service', async () => {
    const res = await accounts.http.get('/api/v1/openapi.json');

    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.body.openapi).toBe('3.1.0');
    expect(res.body).toEqual(JSON.parse(readFileSync(OPENAPI_FILE, 'utf8')));
  });

  test('documents every route the app serves, and serves every route it documents', async () => {
    const doc = (await accounts.http.get('/api/v1/openapi.json')).body as { paths: Record<string, Record<string, unknown>> };
    const documented = Object.entries(doc.paths)
      .flatMap(([path, ops]) => Object.keys(ops).map((method) => `${method.toUpperCase()} ${path}`))
      .sort();

    expect(servedRoutes(accounts.app)).toEqual(documented);
  });

  test('documents every error code each operation can answer with', () => {
    const text = readFileSync(OPENAPI_FILE, 'utf8');
    for (const code of ['validation_failed', 'invalid_referral_code', 'email_taken', 'unavailable', 'invalid_credentials', 'too_many_attempts', 'token_reused', 'invalid_token', 'token_expired', 'invalid_code', 'code_expired', 'already_confirmed', 'resend_cooldown', 'invalid_json', 'payload_too_large', 'unsupported_media_type', 'too_many_registrations']) {
      expect(text).toContain(code);
    }
  });
});
