import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import type { Response } from 'supertest';
import { createTestDatabase, type TestDatabase } from '../support/infra';
import { startTestAccounts, strongPassword, uniqueEmail, type TestAccounts } from '../../services/accounts/test/support/accounts-app';

/**
 * Property-based fuzzing of every HTTP endpoint of accounts: random and malformed bodies, content
 * types, Authorization and Prefer headers, unicode (lone surrogates, 4-byte characters, NUL), huge
 * values. For every request: never a 5xx; every 4xx is a JSON body in the contract's error shape and
 * changes no row of any table (login_throttle and login_attempts excepted for a 401/429 login: counting attempts is their job).
 */
const RUNS = Number(process.env.SECURITY_FUZZ_RUNS ?? 250);
const RESULTS_FILE = path.join(__dirname, '..', '..', 'test-results', 'security-http-fuzz.json');
const TABLES = ['users', 'affiliates', 'email_confirmations', 'refresh_tokens', 'outbox', 'mail_delivery_status', 'processed_events', 'login_throttle', 'login_attempts', 'registration_limits', 'accounts_poison_events'];

// Header values Node's HTTP client can send at all (no CR, LF, NUL), printable ASCII and Latin-1.
const headerChar = fc.integer({ min: 0x20, max: 0xff }).filter((c) => c !== 0x7f).map((c) => String.fromCharCode(c));
const headerValue = fc.string({ unit: headerChar, maxLength: 300 });

const weirdString = fc.oneof(
  fc.string(),
  fc.string({ unit: 'binary', maxLength: 50 }), // lone surrogates included
  fc.string({ unit: 'grapheme', maxLength: 30 }), // 4-byte characters, combining marks
  fc.constantFrom('\u0000', 'a\u0000b@example.com', '😀'.repeat(100), 'İ'.repeat(320), 'ß'.repeat(321), '\r\nBcc: x@evil.test', '<script>alert(1)</script>', "'; DROP TABLE users; --", '%_\\'),
  fc.nat({ max: 70_000 }).map((n) => 'x'.repeat(n)),
  fc.emailAddress(),
);
const anyField = fc.oneof(weirdString, fc.integer(), fc.double(), fc.boolean(), fc.constant(null), fc.array(weirdString, { maxLength: 3 }), fc.dictionary(fc.string({ maxLength: 5 }), weirdString, { maxKeys: 3 }));
const FIELDS = ['email', 'password', 'first_name', 'last_name', 'referral_code', 'refresh_token', 'code'] as const;

/** A body as bytes on the wire, with the content type it claims. */
const body = fc.record({
  // Mostly JSON, so most bodies get past the media-type check and exercise validation and SQL.
  contentType: fc.oneof(
    { arbitrary: fc.constant('application/json'), weight: 6 },
    fc.constantFrom('application/json', 'application/json; charset=utf-8', 'application/json; charset=utf-16', 'application/json; charset=latin1', 'APPLICATION/JSON', 'application/vnd.api+json', 'text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/xml', ''),
    headerValue,
  ),
  payload: fc.oneof(
    fc.dictionary(fc.constantFrom(...FIELDS), anyField, { maxKeys: 5 }).map((o) => JSON.stringify(o)),
    fc.record({ email: fc.oneof(fc.emailAddress(), weirdString), password: fc.oneof(fc.constant(strongPassword), weirdString) }).map((o) => JSON.stringify(o)),
    fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v)),
    fc.nat({ max: 3_000 }).map((n) => '['.repeat(n) + ']'.repeat(n)), // deep nesting
    fc.string({ unit: 'binary', maxLength: 200 }), // mostly not JSON
    fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)), // not even UTF-8
    fc.constant(''),
  ),
});

describe('HTTP fuzzing of every accounts endpoint', () => {
  let db: TestDatabase;
  let accounts: TestAccounts;
  let accessToken: string;
  let refreshToken: string;
  const figures = { requests: 0, byStatus: {} as Record<string, number>, byEndpoint: {} as Record<string, number>, atLeast500: 0, rejectedThatChangedRows: 0 };

  beforeAll(async () => {
    db = await createTestDatabase();
    accounts = startTestAccounts({ databaseUrl: db.url });
    const reg = await accounts.http.post('/api/v1/usr/register').send({ email: uniqueEmail('fuzz'), password: strongPassword });
    accessToken = reg.body.access_token;
    refreshToken = reg.body.refresh_token;
  });
  afterAll(async () => {
    mkdirSync(path.dirname(RESULTS_FILE), { recursive: true });
    writeFileSync(RESULTS_FILE, `${JSON.stringify(figures, null, 2)}\n`);
    console.log(
      `[fuzz] accounts HTTP: ${figures.requests} requests over ${Object.keys(figures.byEndpoint).length} endpoints, responses >= 500: ${figures.atLeast500}, rejected requests that changed rows: ${figures.rejectedThatChangedRows}, statuses ${JSON.stringify(figures.byStatus)} (figures in test-results/security-http-fuzz.json)`,
    );
    await accounts.close();
    await db.drop();
  });

  const rowCounts = async (): Promise<Record<string, number>> => {
    const { rows } = await db.pool.query(`SELECT ${TABLES.map((t) => `(SELECT count(*)::int FROM ${t}) AS ${t}`).join(', ')}`);
    return rows[0] as Record<string, number>;
  };

  /** One request's checks; returns nothing, throws (so fast-check shrinks) on any violation. */
  const check = async (endpoint: string, send: () => Promise<Response>) => {
    const before = await rowCounts();
    const res = await send();
    figures.requests += 1;
    figures.byEndpoint[endpoint] = (figures.byEndpoint[endpoint] ?? 0) + 1;
    figures.byStatus[String(res.status)] = (figures.byStatus[String(res.status)] ?? 0) + 1;
    if (res.status >= 500) figures.atLeast500 += 1;
    expect(res.status).toBeLessThan(500);
    if (res.status >= 400) {
      expect(res.headers['content-type']).toMatch(/^application\/json/);
      expect(res.body).toEqual({ error: { code: expect.stringMatching(/^[a-z][a-z_]*$/), message: expect.any(String), ...(res.body?.error?.details ? { details: expect.any(Array) } : {}) } });
      const after = await rowCounts();
      if (endpoint === 'register' && (res.status === 409 || res.status === 429)) {
        // A 409 spends a registration slot of the client (it probes which addresses exist).
        delete before.registration_limits;
        delete after.registration_limits;
      }
      if (endpoint === 'login' && (res.status === 401 || res.status === 429)) {
        // Reserving the attempt before the password check is the throttle's job (login-throttle.int.test.ts).
        for (const counts of [before, after]) {
          delete counts.login_throttle;
          delete counts.login_attempts;
        }
      }
      if (JSON.stringify(after) !== JSON.stringify(before)) figures.rejectedThatChangedRows += 1;
      expect(after).toEqual(before);
    }
  };

  const authorization = fc.oneof(
    fc.constant(undefined),
    headerValue,
    headerValue.map((v) => `Bearer ${v}`),
    fc.constantFrom('Bearer', 'Bearer ', 'Basic dXNlcjpwYXNz', 'bearer x.y.z', 'Bearer a.b.c', 'Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.'),
    fc.constant('valid').map(() => `Bearer ${accessToken}`),
    fc.constant('refresh').map(() => `Bearer ${refreshToken}`),
    headerValue.map((v) => `Bearer ${accessToken}${v}`),
  );
  const prefer = fc.oneof(fc.constant(undefined), headerValue, fc.constantFrom('wait=0', 'wait=-1', 'wait=99999999999', 'wait=1e9', 'wait="', 'respond-async, wait=abc', 'wait=0;x=y'));

  const post = (url: string, b: { contentType: string; payload: string | Buffer }, headers: Record<string, string | undefined>) => {
    let req = accounts.http.post(url);
    for (const [k, v] of Object.entries(headers)) if (v !== undefined) req = req.set(k, v);
    if (b.contentType !== '') req = req.set('Content-Type', b.contentType);
    return req.send(b.payload);
  };

  test.each([
    ['register', '/api/v1/usr/register'],
    ['login', '/api/v1/usr/login'],
    ['token/refresh', '/api/v1/usr/token/refresh'],
    ['email/resend without a token', '/api/v1/usr/email/resend'],
  ])(`POST %s: ${RUNS} random bodies and headers, never a 5xx, errors in the contract shape, rejected requests write nothing`, async (endpoint, url) => {
    await fc.assert(
      fc.asyncProperty(body, prefer, async (b, p) => check(endpoint, () => post(url, b, { Prefer: p }))),
      { numRuns: RUNS },
    );
  });

  test.each([
    ['email/confirm', '/api/v1/usr/email/confirm'],
    ['email/resend with a token', '/api/v1/usr/email/resend'],
  ])(`POST %s: ${RUNS} random bodies and Authorization headers, never a 5xx, errors in the contract shape`, async (endpoint, url) => {
    await fc.assert(
      fc.asyncProperty(body, authorization, async (b, auth) => check(endpoint, () => post(url, b, { Authorization: auth }))),
      { numRuns: RUNS },
    );
  });

  test(`GET email/status and openapi.json: ${RUNS * 2} random Authorization headers and query strings`, async () => {
    await fc.assert(
      fc.asyncProperty(authorization, fc.string({ maxLength: 100 }), fc.boolean(), async (auth, query, openapi) => {
        const url = `${openapi ? '/api/v1/openapi.json' : '/api/v1/usr/email/status'}?${encodeURIComponent(query)}=${encodeURIComponent(query)}`;
        await check(openapi ? 'openapi.json' : 'email/status', () => {
          const req = accounts.http.get(url);
          return auth === undefined ? req : req.set('Authorization', auth);
        });
      }),
      { numRuns: RUNS * 2 },
    );
  });

  test(`unknown routes and methods: ${RUNS} random paths answer a JSON 404 (or 405-like 4xx), never a 5xx`, async () => {
    const segment = fc.oneof(fc.string({ unit: 'grapheme', maxLength: 20 }), fc.constantFrom('..', '%', '%00', '%2e%2e', 'usr', 'api', 'v1', '\u0000'));
    await fc.assert(
      fc.asyncProperty(fc.constantFrom('get', 'post', 'put', 'patch', 'delete', 'options') as fc.Arbitrary<'get' | 'post' | 'put' | 'patch' | 'delete' | 'options'>, fc.array(segment, { minLength: 1, maxLength: 4 }), body, async (method, segments, b) => {
        const url = `/api/v1/${segments.map((s) => encodeURIComponent(s)).join('/')}`.replace(/%25(00|2e)/gi, '%$1');
        await check('unknown routes', () => {
          const req = accounts.http[method](url);
          return method === 'get' || method === 'options' ? req : req.set('Content-Type', b.contentType || 'application/json').send(b.payload);
        });
      }),
      { numRuns: RUNS },
    );
  });

  test('after the fuzzing the process still serves (/healthz answers) and no response was a 5xx', async () => {
    expect((await accounts.http.get('/healthz')).status).toBe(200);
    expect(figures.requests).toBeGreaterThanOrEqual(RUNS * 9);
    expect(figures.atLeast500).toBe(0);
  });
});
