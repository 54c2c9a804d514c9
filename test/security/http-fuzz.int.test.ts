import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { createTestDatabase, type TestDatabase } from '../support/infra';
import {
  BEARER_POSTS,
  bearerPostProperty,
  createHttpFuzz,
  getProperty,
  PUBLIC_POSTS,
  publicPostProperty,
  unknownRouteProperty,
} from '../support/fuzz';
import {
  startTestAccounts,
  strongPassword,
  uniqueEmail,
  type TestAccounts,
} from '../../services/accounts/test/support/accounts-app';

/**
 * Property-based fuzzing of every HTTP endpoint of accounts: random and malformed bodies, content
 * types, Authorization and Prefer headers, unicode (lone surrogates, 4-byte characters, NUL), huge
 * values. For every request: never a 5xx; every 4xx is a JSON body in the contract's error shape and
 * changes no row of any table (the rate-limit tables excepted for a 401/429 login and a 409/429
 * registration: counting attempts is their job). Generators and checks: test/support/fuzz.ts, shared
 * with `npm run fuzz` (the same at volume).
 */
const RUNS = Number(process.env.SECURITY_FUZZ_RUNS ?? 250);
const RESULTS_FILE = path.join(__dirname, '..', '..', 'test-results', 'security-http-fuzz.json');

describe('HTTP fuzzing of every accounts endpoint', () => {
  let db: TestDatabase;
  let accounts: TestAccounts;
  let fuzz: ReturnType<typeof createHttpFuzz>;
  const tokens = { access: '', refresh: '' };

  beforeAll(async () => {
    db = await createTestDatabase();
    accounts = startTestAccounts({ databaseUrl: db.url });
    fuzz = createHttpFuzz({ accounts, pool: db.pool, throwOnViolation: true });
    const reg = await accounts.http
      .post('/api/v1/usr/register')
      .send({ email: uniqueEmail('fuzz'), password: strongPassword });
    tokens.access = reg.body.access_token;
    tokens.refresh = reg.body.refresh_token;
  });
  afterAll(async () => {
    const { figures } = fuzz;
    mkdirSync(path.dirname(RESULTS_FILE), { recursive: true });
    writeFileSync(RESULTS_FILE, `${JSON.stringify(figures, null, 2)}\n`);
    console.log(
      `[fuzz] accounts HTTP: ${figures.requests} requests over ${Object.keys(figures.byEndpoint).length} endpoints, responses >= 500: ${figures.atLeast500}, rejected requests that changed rows: ${figures.rejectedThatChangedRows}, statuses ${JSON.stringify(figures.byStatus)} (figures in test-results/security-http-fuzz.json)`,
    );
    await accounts.close();
    await db.drop();
  });

  test.each(PUBLIC_POSTS)(
    `POST %s: ${RUNS} random bodies and headers, never a 5xx, errors in the contract shape, rejected requests write nothing`,
    async (endpoint, url) => {
      await fc.assert(publicPostProperty(fuzz, endpoint, url), { numRuns: RUNS });
    },
  );

  test.each(BEARER_POSTS)(
    `POST %s: ${RUNS} random bodies and Authorization headers, never a 5xx, errors in the contract shape`,
    async (endpoint, url) => {
      await fc.assert(
        bearerPostProperty(fuzz, endpoint, url, () => tokens),
        { numRuns: RUNS },
      );
    },
  );

  test(`GET email/status and openapi.json: ${RUNS * 2} random Authorization headers and query strings`, async () => {
    await fc.assert(
      getProperty(fuzz, accounts, () => tokens),
      { numRuns: RUNS * 2 },
    );
  });

  test(`unknown routes and methods: ${RUNS} random paths answer a JSON 404 (or 405-like 4xx), never a 5xx`, async () => {
    await fc.assert(unknownRouteProperty(fuzz, accounts), { numRuns: RUNS });
  });

  test('after the fuzzing the process still serves (/healthz answers) and no response was a 5xx', async () => {
    expect((await accounts.http.get('/healthz')).status).toBe(200);
    expect(fuzz.figures.requests).toBeGreaterThanOrEqual(RUNS * 9);
    expect(fuzz.figures.atLeast500).toBe(0);
  });
});
