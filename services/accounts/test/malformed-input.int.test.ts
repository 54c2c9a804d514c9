import fc from 'fast-check';
import { withTestAccounts } from './support/accounts-app';

describe('malformed requests never produce a 5xx', () => {
  const { db, accounts } = withTestAccounts();

  const post = (path: string) => accounts.http.post(`/api/v1/usr/${path}`);
  const expectError = (
    res: { status: number; headers: Record<string, string>; body: { error?: { code?: string } } },
    status: number,
    code: string,
  ) => {
    expect(res.status).toBe(status);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.body.error?.code).toBe(code);
  };

  test('when the body is invalid JSON, returns 400 invalid_json', async () => {
    const res = await post('register').set('Content-Type', 'application/json').send('{"email": "a@b.c",');

    expectError(res, 400, 'invalid_json');
  });

  test('when the content type is not JSON, returns 415 unsupported_media_type', async () => {
    const res = await post('register').set('Content-Type', 'text/plain').send('email=a@b.c&password=x');

    expectError(res, 415, 'unsupported_media_type');
  });

  test('when the content type is a form, returns 415 unsupported_media_type', async () => {
    const res = await post('login').type('form').send({ email: 'a@b.c', password: 'x' });

    expectError(res, 415, 'unsupported_media_type');
  });

  test('when fields have the wrong types, returns 400 validation_failed naming them', async () => {
    const res = await post('register').send({ email: 42, password: ['x'], first_name: { a: 1 } });

    expectError(res, 400, 'validation_failed');
    expect(res.body.error.details.map((d: { path: string }) => d.path).sort()).toEqual([
      'email',
      'first_name',
      'password',
    ]);
  });

  test('when the body is a JSON array or null, returns 400', async () => {
    expectError(await post('register').send([1, 2]), 400, 'validation_failed');
    expectError(await post('login').set('Content-Type', 'application/json').send('null'), 400, 'invalid_json');
  });

  test('when fields are missing, returns 400 validation_failed', async () => {
    expectError(await post('register').send({}), 400, 'validation_failed');
    expectError(await post('token/refresh').send({}), 400, 'validation_failed');
  });

  test('when strings are huge (under the body limit), returns 400 validation_failed and writes nothing', async () => {
    const res = await post('register').send({
      email: `${'a'.repeat(40_000)}@example.com`,
      password: 'p'.repeat(20_000),
      first_name: 'n'.repeat(1_000),
    });

    expectError(res, 400, 'validation_failed');
    expect((await db.pool.query('SELECT count(*)::int AS n FROM users')).rows[0].n).toBe(0);
  });

  test('when the body is over 64 KiB, returns 413 payload_too_large', async () => {
    const res = await post('register').send({ email: 'big@example.com', password: 'x'.repeat(70 * 1024) });

    expectError(res, 413, 'payload_too_large');
  });

  test('when the route is unknown, returns a JSON 404', async () => {
    const res = await accounts.http.get('/api/v1/usr/nope');

    expectError(res, 404, 'not_found');
  });

  test('responses carry the security headers and no framework banner', async () => {
    const res = await accounts.http.get('/healthz');

    expect(res.headers).toMatchObject({
      'x-content-type-options': 'nosniff',
      'x-frame-options': 'DENY',
      'content-security-policy': expect.stringContaining("default-src 'none'"),
    });
    expect(res.headers['x-powered-by']).toBeUndefined();
  });

  test('property: random JSON bodies to register and login always get a 2xx or 4xx JSON answer', async () => {
    const field = fc.oneof(
      fc.string(),
      fc.integer(),
      fc.boolean(),
      fc.constant(null),
      fc.array(fc.string(), { maxLength: 3 }),
      fc.emailAddress(),
      fc.object({ maxDepth: 1 }),
    );
    const body = fc.oneof(
      fc.record(
        { email: field, password: field, first_name: field, last_name: field, referral_code: field },
        { requiredKeys: [] },
      ),
      fc.jsonValue({ maxDepth: 2 }),
    );
    await fc.assert(
      fc.asyncProperty(fc.constantFrom('register', 'login'), body, async (path, value) => {
        const res = await post(path).set('Content-Type', 'application/json').send(JSON.stringify(value));
        expect(res.status).toBeLessThan(500);
        expect(res.headers['content-type']).toMatch(/^application\/json/);
      }),
      { numRuns: 60 },
    );
  });
});
