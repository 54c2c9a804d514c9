import fc from 'fast-check';
import type { Pool } from 'pg';
import type { Response } from 'supertest';
import type { TestAccounts } from '../../services/accounts/test/support/accounts-app';

/**
 * The generators and checks of the security fuzzing, shared by the CI tests
 * (test/security/http-fuzz.int.test.ts, consumer-poison.int.test.ts) and `npm run fuzz` (scripts/fuzz.ts,
 * the same at volume).
 */

const STRONG_PASSWORD = 'correct horse battery staple';

/** Every table a rejected request must leave alone (the rate-limit tables excepted where noted in `check`). */
export const FUZZ_TABLES = [
  'users',
  'affiliates',
  'email_confirmations',
  'refresh_tokens',
  'outbox',
  'mail_delivery_status',
  'processed_events',
  'login_throttle',
  'login_attempts',
  'registration_limits',
  'accounts_poison_events',
];

// Header values Node's HTTP client can send at all (no CR, LF, NUL), printable ASCII and Latin-1.
const headerChar = fc
  .integer({ min: 0x20, max: 0xff })
  .filter((c) => c !== 0x7f)
  .map((c) => String.fromCharCode(c));
export const headerValue = fc.string({ unit: headerChar, maxLength: 300 });

export const weirdString = fc.oneof(
  fc.string(),
  fc.string({ unit: 'binary', maxLength: 50 }), // lone surrogates included
  fc.string({ unit: 'grapheme', maxLength: 30 }), // 4-byte characters, combining marks
  fc.constantFrom(
    '\u0000',
    'a\u0000b@example.com',
    '😀'.repeat(100),
    'İ'.repeat(320),
    'ß'.repeat(321),
    '\r\nBcc: x@evil.test',
    '<script>alert(1)</script>',
    "'; DROP TABLE users; --",
    '%_\\',
  ),
  fc.nat({ max: 70_000 }).map((n) => 'x'.repeat(n)),
  fc.emailAddress(),
);
const anyField = fc.oneof(
  weirdString,
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.array(weirdString, { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 5 }), weirdString, { maxKeys: 3 }),
);
const FIELDS = ['email', 'password', 'first_name', 'last_name', 'referral_code', 'refresh_token', 'code'] as const;

export type FuzzBody = { contentType: string; payload: string | Buffer };

/** A body as bytes on the wire, with the content type it claims. */
export const body: fc.Arbitrary<FuzzBody> = fc.record({
  // Mostly JSON, so most bodies get past the media-type check and exercise validation and SQL.
  contentType: fc.oneof(
    { arbitrary: fc.constant('application/json'), weight: 6 },
    fc.constantFrom(
      'application/json',
      'application/json; charset=utf-8',
      'application/json; charset=utf-16',
      'application/json; charset=latin1',
      'APPLICATION/JSON',
      'application/vnd.api+json',
      'text/plain',
      'application/x-www-form-urlencoded',
      'multipart/form-data; boundary=x',
      'application/xml',
      '',
    ),
    headerValue,
  ),
  payload: fc.oneof(
    fc.dictionary(fc.constantFrom(...FIELDS), anyField, { maxKeys: 5 }).map((o) => JSON.stringify(o)),
    fc
      .record({
        email: fc.oneof(fc.emailAddress(), weirdString),
        password: fc.oneof(fc.constant(STRONG_PASSWORD), weirdString),
      })
      .map((o) => JSON.stringify(o)),
    fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v)),
    fc.nat({ max: 3_000 }).map((n) => '['.repeat(n) + ']'.repeat(n)), // deep nesting
    fc.string({ unit: 'binary', maxLength: 200 }), // mostly not JSON
    fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)), // not even UTF-8
    fc.constant(''),
  ),
});

export const prefer = fc.oneof(
  fc.constant(undefined),
  headerValue,
  fc.constantFrom(
    'wait=0',
    'wait=-1',
    'wait=99999999999',
    'wait=1e9',
    'wait="',
    'respond-async, wait=abc',
    'wait=0;x=y',
  ),
);

/** Authorization headers: garbage, broken Bearer values, and the given real tokens (valid, refresh, tampered). */
export function authorization(tokens: () => { access: string; refresh: string }): fc.Arbitrary<string | undefined> {
  return fc.oneof(
    fc.constant(undefined),
    headerValue,
    headerValue.map((v) => `Bearer ${v}`),
    fc.constantFrom(
      'Bearer',
      'Bearer ',
      'Basic dXNlcjpwYXNz',
      'bearer x.y.z',
      'Bearer a.b.c',
      'Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.',
    ),
    fc.constant('valid').map(() => `Bearer ${tokens().access}`),
    fc.constant('refresh').map(() => `Bearer ${tokens().refresh}`),
    headerValue.map((v) => `Bearer ${tokens().access}${v}`),
  );
}

export const routeSegment = fc.oneof(
  fc.string({ unit: 'grapheme', maxLength: 20 }),
  fc.constantFrom('..', '%', '%00', '%2e%2e', 'usr', 'api', 'v1', '\u0000'),
);
export const anyMethod = fc.constantFrom('get', 'post', 'put', 'patch', 'delete', 'options') as fc.Arbitrary<
  'get' | 'post' | 'put' | 'patch' | 'delete' | 'options'
>;

export type HttpFuzzFigures = {
  requests: number;
  byStatus: Record<string, number>;
  byEndpoint: Record<string, number>;
  atLeast500: number;
  rejectedThatChangedRows: number;
  badErrorShape: number;
};

/** The JSON error body of the contract, or a description of what is wrong with it. */
function errorShapeProblem(res: Response): string | undefined {
  if (!/^application\/json/.test(String(res.headers['content-type'] ?? '')))
    return `content-type ${String(res.headers['content-type'])}`;
  if (!res.body || typeof res.body !== 'object' || Object.keys(res.body as object).join(',') !== 'error')
    return `body ${res.text.slice(0, 200)}`;
  const error = (res.body as { error?: Record<string, unknown> } | undefined)?.error;
  const keys = error ? Object.keys(error).sort().join(',') : '';
  if (
    !error ||
    typeof error.code !== 'string' ||
    !/^[a-z][a-z_]*$/.test(error.code) ||
    typeof error.message !== 'string'
  )
    return `body ${res.text.slice(0, 200)}`;
  if (keys !== 'code,message' && !(keys === 'code,details,message' && Array.isArray(error.details)))
    return `error keys ${keys}`;
  return undefined;
}

/**
 * The HTTP fuzzer over one accounts app: `check` sends one request and records it; with
 * `throwOnViolation` (the CI test) a 5xx, a bad error body or a rejected request that wrote a row
 * throws, so fast-check shrinks it; without (`npm run fuzz`) it is counted and the run goes on.
 */
export function createHttpFuzz(opts: { accounts: TestAccounts; pool: Pool; throwOnViolation: boolean }) {
  const figures: HttpFuzzFigures = {
    requests: 0,
    byStatus: {},
    byEndpoint: {},
    atLeast500: 0,
    rejectedThatChangedRows: 0,
    badErrorShape: 0,
  };
  const violations: string[] = [];
  const violation = (message: string) => {
    if (violations.length < 50) violations.push(message);
    if (opts.throwOnViolation) throw new Error(message);
  };

  const rowCounts = async (): Promise<Record<string, number>> => {
    const { rows } = await opts.pool.query(
      `SELECT ${FUZZ_TABLES.map((t) => `(SELECT count(*)::int FROM ${t}) AS ${t}`).join(', ')}`,
    );
    return rows[0] as Record<string, number>;
  };

  const check = async (endpoint: string, send: () => Promise<Response>): Promise<void> => {
    const before = await rowCounts();
    const res = await send();
    figures.requests += 1;
    figures.byEndpoint[endpoint] = (figures.byEndpoint[endpoint] ?? 0) + 1;
    figures.byStatus[String(res.status)] = (figures.byStatus[String(res.status)] ?? 0) + 1;
    if (res.status >= 500) {
      figures.atLeast500 += 1;
      violation(`${endpoint}: ${res.status} ${res.text.slice(0, 200)}`);
    }
    if (res.status < 400) return;
    const problem = errorShapeProblem(res);
    if (problem) {
      figures.badErrorShape += 1;
      violation(`${endpoint}: ${res.status} not in the contract's error shape (${problem})`);
    }
    const after = await rowCounts();
    for (const counts of [before, after]) {
      // Counting attempts is the rate limits' job: a 409/429 registration spends a slot, a 401/429 login an attempt.
      if (endpoint === 'register' && (res.status === 409 || res.status === 429)) delete counts.registration_limits;
      if (endpoint === 'login' && (res.status === 401 || res.status === 429)) {
        delete counts.login_throttle;
        delete counts.login_attempts;
      }
    }
    if (JSON.stringify(after) !== JSON.stringify(before)) {
      figures.rejectedThatChangedRows += 1;
      violation(`${endpoint}: ${res.status} changed rows ${JSON.stringify(before)} -> ${JSON.stringify(after)}`);
    }
  };

  const post = (url: string, b: FuzzBody, headers: Record<string, string | undefined>) => {
    let req = opts.accounts.http.post(url);
    for (const [k, v] of Object.entries(headers)) if (v !== undefined) req = req.set(k, v);
    if (b.contentType !== '') req = req.set('Content-Type', b.contentType);
    return req.send(b.payload);
  };

  return { figures, violations, check, post };
}

/** The fuzzed endpoints, by the headers that matter to each. */
export const PUBLIC_POSTS = [
  ['register', '/api/v1/usr/register'],
  ['login', '/api/v1/usr/login'],
  ['token/refresh', '/api/v1/usr/token/refresh'],
  ['email/resend without a token', '/api/v1/usr/email/resend'],
] as const;
export const BEARER_POSTS = [
  ['email/confirm', '/api/v1/usr/email/confirm'],
  ['email/resend with a token', '/api/v1/usr/email/resend'],
] as const;

/** The property of one public POST endpoint: random bodies and Prefer headers. */
export const publicPostProperty = (fuzz: ReturnType<typeof createHttpFuzz>, endpoint: string, url: string) =>
  fc.asyncProperty(body, prefer, async (b, p) => fuzz.check(endpoint, () => fuzz.post(url, b, { Prefer: p })));

/** The property of one Bearer POST endpoint: random bodies and Authorization headers. */
export const bearerPostProperty = (
  fuzz: ReturnType<typeof createHttpFuzz>,
  endpoint: string,
  url: string,
  tokens: () => { access: string; refresh: string },
) =>
  fc.asyncProperty(body, authorization(tokens), async (b, auth) =>
    fuzz.check(endpoint, () => fuzz.post(url, b, { Authorization: auth })),
  );

/** GET email/status and openapi.json with random Authorization headers and query strings. */
export const getProperty = (
  fuzz: ReturnType<typeof createHttpFuzz>,
  accounts: TestAccounts,
  tokens: () => { access: string; refresh: string },
) =>
  fc.asyncProperty(authorization(tokens), fc.string({ maxLength: 100 }), fc.boolean(), async (auth, query, openapi) => {
    const url = `${openapi ? '/api/v1/openapi.json' : '/api/v1/usr/email/status'}?${encodeURIComponent(query)}=${encodeURIComponent(query)}`;
    await fuzz.check(openapi ? 'openapi.json' : 'email/status', () => {
      const req = accounts.http.get(url);
      return auth === undefined ? req : req.set('Authorization', auth);
    });
  });

/** Unknown routes and methods: random paths and bodies. */
export const unknownRouteProperty = (fuzz: ReturnType<typeof createHttpFuzz>, accounts: TestAccounts) =>
  fc.asyncProperty(
    anyMethod,
    fc.array(routeSegment, { minLength: 1, maxLength: 4 }),
    body,
    async (method, segments, b) => {
      const url = `/api/v1/${segments.map((s) => encodeURIComponent(s)).join('/')}`.replace(/%25(00|2e)/gi, '%$1');
      await fuzz.check('unknown routes', () => {
        const req = accounts.http[method](url);
        return method === 'get' || method === 'options'
          ? req
          : req.set('Content-Type', b.contentType || 'application/json').send(b.payload);
      });
    },
  );

/** Just under Kafka's default 1 MiB message limit: the largest poison a producer can hand us. */
export const HUGE_POISON_BYTES = 900 * 1024;

/**
 * Messages no consumer can accept, generated from a valid envelope: not JSON, not UTF-8, JSON of the
 * wrong shape, a required field removed, a required field of the wrong type — `generated` of them,
 * then a null value, `null`, NUL bytes and a 900 KB message (last). `valid` is the event they are
 * derived from (never itself produced as poison).
 */
export function poisonValues(
  valid: Record<string, unknown>,
  required: { envelope: string[]; payload: string[] },
  seed: number,
  generated = 40,
): (string | Buffer | null)[] {
  const withoutField = fc.oneof(
    fc.constantFrom(...required.envelope).map((field) => {
      const copy: Record<string, unknown> = { ...valid };
      delete copy[field];
      return JSON.stringify(copy);
    }),
    fc.constantFrom(...required.payload).map((field) => {
      const payload: Record<string, unknown> = { ...(valid.payload as Record<string, unknown>) };
      delete payload[field];
      return JSON.stringify({ ...valid, payload });
    }),
  );
  const wrongType = fc
    .tuple(
      fc.constantFrom(
        ...required.envelope.map((f) => ['envelope', f] as const),
        ...required.payload.map((f) => ['payload', f] as const),
      ),
      fc.constantFrom<unknown>([], { x: 1 }, true, -1.5),
    )
    .map(([[where, field], value]) => {
      if (where === 'envelope') return JSON.stringify({ ...valid, [field]: value });
      return JSON.stringify({ ...valid, payload: { ...(valid.payload as Record<string, unknown>), [field]: value } });
    });
  const arbitrary = fc.oneof(
    fc.string({ unit: 'binary', maxLength: 200 }).filter((s) => {
      try {
        JSON.parse(s);
        return false;
      } catch {
        return true;
      }
    }),
    fc
      .uint8Array({ minLength: 1, maxLength: 200 })
      .map((bytes) => Buffer.concat([Buffer.from([0xff, 0xfe, 0x00]), Buffer.from(bytes)])),
    fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)),
    withoutField,
    wrongType,
  );
  return [
    ...fc.sample(arbitrary, { numRuns: generated, seed }),
    null,
    'null',
    `{"id":"${'\u0000'.repeat(3)}"}`,
    JSON.stringify({ ...valid, padding: 'x'.repeat(HUGE_POISON_BYTES) }),
  ];
}
