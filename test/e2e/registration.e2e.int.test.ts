import type { TestDatabase } from '../support/infra';
import type { System } from '../support/system';
import { startTestStack, type TestStack } from '../support/test-stack';
import { waitFor } from '../support/wait-for';

/**
 * The contract as a client app sees it, across real processes: accounts, two relays, two mailers, a
 * Kafka broker and the SMTP test server, each its own OS process (or server).
 */
const JWT_SECRET = 'e2e-test-secret-that-is-long-enough-0123456789';
const SMTP_PASSWORD = 'smtp-pa55word-never-logged';

type Json = Record<string, unknown>;

async function call(
  base: string,
  method: string,
  path: string,
  body?: unknown,
  token?: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: Json; headers: Headers; ms: number }> {
  const started = Date.now();
  const res = await fetch(`${base}${path}`, {
    method,
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}), ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return {
    status: res.status,
    body: text ? (JSON.parse(text) as Json) : {},
    headers: res.headers,
    ms: Date.now() - started,
  };
}

const codeOf = (text: string): string => {
  const match = /\b(\d{6})\b/.exec(text);
  if (!match?.[1]) throw new Error(`no 6-digit code in mail: ${text.slice(0, 200)}`);
  return match[1];
};

describe('end to end, real processes', () => {
  let stack: TestStack | undefined;
  let db: TestDatabase;
  let system: System;
  let api: string;
  const passwords: string[] = [];
  const codes: string[] = [];

  beforeAll(async () => {
    stack = await startTestStack({
      counts: { accounts: 1, relay: 2, mailer: 2 },
      smtpAuth: { user: 'mailer', pass: SMTP_PASSWORD },
      env: {
        JWT_SECRET,
        SMTP_TIMEOUT_MS: '1000',
        MAIL_RETRY_BASE_MS: '300',
        MAIL_RETRY_MAX_MS: '2000',
        MAIL_MAX_ATTEMPTS: '30',
        BREAKER_VOLUME_THRESHOLD: '2',
        BREAKER_RESET_TIMEOUT_MS: '1500',
        RELAY_POLL_INTERVAL_MS: '200',
        RESEND_COOLDOWN_S: '60',
      },
    });
    ({ system, db } = stack);
    api = system.accountsUrls()[0] ?? '';
  }, 180_000);

  afterAll(async () => {
    await stack?.stop();
  });

  const mailsTo = (email: string) => system.smtp.messages.filter((m) => m.to.includes(email));

  it('register → the mail arrives → confirm with the code from the mail → status confirmed', async () => {
    const email = `alice.${Date.now()}@example.test`;
    const password = 'correct horse battery staple';
    passwords.push(password);

    const registered = await call(api, 'POST', '/api/v1/usr/register', {
      email,
      password,
      first_name: 'Alice',
      last_name: 'Ünïcode',
    });
    expect(registered.status).toBe(201);
    const token = registered.body.access_token as string;

    const [mail] = await waitFor(() => mailsTo(email).length === 1 && mailsTo(email), {
      timeoutMs: 30_000,
      message: 'confirmation mail',
    });
    const code = codeOf(mail?.text ?? '');
    codes.push(code);

    const confirmed = await call(api, 'POST', '/api/v1/usr/email/confirm', { code }, token);
    expect(confirmed.status).toBe(200);
    expect(confirmed.body).toMatchObject({ email_confirmed: true });

    const status = await waitFor(
      async () => {
        const s = await call(api, 'GET', '/api/v1/usr/email/status', undefined, token);
        return (s.body.last_request as Json | null)?.status === 'sent' && s;
      },
      { timeoutMs: 20_000, message: 'delivery status sent' },
    );
    expect(status.body).toMatchObject({ email_confirmed: true, last_request: { status: 'sent', error_class: null } });
    expect(mailsTo(email)).toHaveLength(1);
  });

  it('with Prefer: wait=5 and SMTP healthy, the response reports the mail as sent', async () => {
    const email = `prefer.${Date.now()}@example.test`;
    const res = await call(
      api,
      'POST',
      '/api/v1/usr/register',
      { email, password: 'another long password' },
      undefined,
      { prefer: 'wait=5' },
    );
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ email_confirmation_sent: true, email_confirmation: { status: 'sent' } });
    expect(mailsTo(email)).toHaveLength(1);
  });

  it("the seed's scenario: SMTP stalls during registration, the user resends, SMTP recovers, the mail arrives with no user action", async () => {
    await system.smtp.setFault({ mode: 'stall-connect' });
    const email = `stalled.${Date.now()}@example.test`;

    const registered = await call(api, 'POST', '/api/v1/usr/register', { email, password: 'stalled but fine 42' });
    expect(registered.status).toBe(201);
    expect(registered.body).toMatchObject({ email_confirmation_sent: false, email_confirmation: { status: 'queued' } });
    const token = registered.body.access_token as string;

    // The mailer tried, timed out (or found the breaker open) and said so.
    const deferred = await waitFor(
      async () => {
        const s = await call(api, 'GET', '/api/v1/usr/email/status', undefined, token);
        const last = s.body.last_request as Json | null;
        return last?.status === 'deferred' && last;
      },
      { timeoutMs: 30_000, message: 'status deferred during the outage' },
    );
    expect(['timeout', 'circuit_open']).toContain(deferred.error_class);

    // A deferred last status lifts the cooldown: the user may ask again during the outage.
    const resent = await call(api, 'POST', '/api/v1/usr/email/resend', undefined, token);
    expect(resent.status).toBe(202);
    const newRequest = (resent.body.email_confirmation as Json).request_id;
    const firstRequest = (registered.body.email_confirmation as Json).request_id;

    // The mailer learns of the newer request through Kafka; once it has, the older one ends `failed`
    // with no error class (superseded) and is never sent. (Had SMTP recovered before that, the older
    // mail could go out first: two mails, and only the newest code works.)
    await waitFor(
      async () => {
        const { rows } = await db.pool.query<{ status: string; error_class: string | null }>(
          'SELECT status, error_class FROM mail_delivery_status WHERE request_id = $1',
          [firstRequest],
        );
        return rows[0]?.status === 'failed' && rows[0].error_class === null;
      },
      { timeoutMs: 30_000, message: 'the first request superseded by the resend' },
    );

    await system.smtp.setFault({ mode: 'healthy' });
    const [mail] = await waitFor(() => mailsTo(email).length >= 1 && mailsTo(email), {
      timeoutMs: 60_000,
      message: 'the mail after SMTP recovered',
    });
    const code = codeOf(mail?.text ?? '');
    codes.push(code);

    const confirmed = await call(api, 'POST', '/api/v1/usr/email/confirm', { code }, token);
    expect(confirmed.status).toBe(200);
    const status = await waitFor(
      async () => {
        const s = await call(api, 'GET', '/api/v1/usr/email/status', undefined, token);
        return (s.body.last_request as Json | null)?.status === 'sent' && s;
      },
      { timeoutMs: 20_000, message: 'status sent after recovery' },
    );
    expect(status.body).toMatchObject({
      email_confirmed: true,
      last_request: { request_id: newRequest, status: 'sent' },
    });
    // The superseded first request is never mailed: exactly one mail, with the newest code.
    expect(mailsTo(email)).toHaveLength(1);
  }, 120_000);

  it('no secret reached any log line of any process', async () => {
    const text = system.logs.join('\n');
    expect(system.logs.length).toBeGreaterThan(20);
    for (const secret of [JWT_SECRET, SMTP_PASSWORD, ...passwords, ...codes.map((c) => `"${c}"`)]) {
      expect({ secret, found: text.includes(secret) }).toEqual({ secret, found: false });
    }
  });
});
