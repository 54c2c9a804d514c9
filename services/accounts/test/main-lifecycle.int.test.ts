import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { createTestDatabase, testBrokers, uniquePrefix, type TestDatabase } from '../../../test/support/infra';
import { labelNameSets, metricSeries } from '../../../test/support/metric-series';
import { freePort } from '../../../test/support/ports';
import { waitFor } from '../../../test/support/wait-for';
import { strongPassword, uniqueEmail } from './support/accounts-app';

const ROOT = path.resolve(__dirname, '..', '..', '..');

describe('accounts main.ts: start, serve, stop on SIGTERM', () => {
  let db: TestDatabase;
  let child: ChildProcess;
  let stdout = '';
  let url: string;
  let opsUrl: string;
  let exit: Promise<number | null>;

  beforeAll(async () => {
    db = await createTestDatabase();
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    const opsPort = await freePort();
    opsUrl = `http://127.0.0.1:${opsPort}`;
    // `node --import tsx`, not the tsx CLI: the CLI relays SIGTERM to its child and SIGKILLs it (exit 143)
    // when the child does not acknowledge within 30 ms, which a loaded machine easily misses mid-drain.
    child = spawn(process.execPath, ['--import', 'tsx', 'services/accounts/src/main.ts'], {
      cwd: ROOT,
      env: {
        PATH: process.env.PATH ?? '',
        DATABASE_URL: db.url,
        KAFKA_BROKERS: testBrokers().join(','),
        KAFKA_TOPIC_PREFIX: uniquePrefix('acc-main'),
        PORT: String(port),
        OPS_PORT: String(opsPort),
        OPS_HOST: '127.0.0.1',
        LOG_LEVEL: 'info',
      },
    });
    child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    exit = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
    await waitFor(async () => (await fetch(`${url}/healthz`)).ok && (await fetch(`${opsUrl}/healthz`)).ok, {
      timeoutMs: 30_000,
      message: 'accounts did not start',
    });
  });
  afterAll(async () => {
    if (child.exitCode === null) child.kill('SIGKILL');
    await db.drop();
  });

  test(
    'the public port serves /healthz but answers 404 for /metrics and /readyz (the resend counters would ' +
      'enumerate accounts)',
    async () => {
      const health = await fetch(`${url}/healthz`);
      const metrics = await fetch(`${url}/metrics`);
      const ready = await fetch(`${url}/readyz`);
      expect([health.status, metrics.status, ready.status]).toEqual([200, 404, 404]);
      expect(await metrics.text()).not.toContain('accounts_resend_requests_total');
    },
  );

  test(
    'the ops port (OPS_PORT) serves /readyz and every ' + 'contract metric accounts owns, with the security headers',
    async () => {
      const ready = await fetch(`${opsUrl}/readyz`);
      const metrics = await fetch(`${opsUrl}/metrics`);
      const text = await metrics.text();
      expect(ready.status).toBe(200);
      expect(await ready.json()).toEqual({ status: 'ready', checks: [{ name: 'postgres', ok: true }] });
      expect(metrics.headers.get('content-type')).toContain('text/plain');
      expect(metrics.headers.get('x-content-type-options')).toBe('nosniff');
      for (const name of [
        'http_request_duration_seconds',
        'accounts_registrations_total',
        'accounts_resend_requests_total',
        'mail_delivery_status_total',
      ]) {
        expect(text).toMatch(new RegExp(`^# TYPE ${name} `, 'm'));
      }
    },
  );

  test(
    'when a registration was served, then /metrics has its http_request_duration_seconds series labelled ' +
      'method, route and status_code, route being the template the RegistrationLatencyHigh alert selects',
    async () => {
      const res = await fetch(`${url}/api/v1/usr/register`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ email: uniqueEmail('metric-labels'), password: strongPassword }),
      });
      const text = await (await fetch(`${opsUrl}/metrics`)).text();

      expect(res.status).toBe(201);
      // The contract's labels, plus the `service` label every series carries.
      expect(labelNameSets(text, 'http_request_duration_seconds_count')).toEqual([
        ['method', 'route', 'service', 'status_code'],
      ]);
      const register = metricSeries(text, 'http_request_duration_seconds_count').find(
        (s) => s.labels.route === '/api/v1/usr/register',
      );
      expect(register).toEqual({
        labels: { method: 'POST', route: '/api/v1/usr/register', status_code: '201', service: 'accounts' },
        value: 1,
      });
    },
  );

  test(
    'serves readiness, the contract metrics at 0 and a registration; then drains and exits 0 on SIGTERM, with ' +
      'JSON logs free of secrets',
    async () => {
      const ready = await fetch(`${opsUrl}/readyz`);
      const metrics = await (await fetch(`${opsUrl}/metrics`)).text();
      const res = await fetch(`${url}/api/v1/usr/register`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-request-id': 'main-test-1' },
        body: JSON.stringify({ email: uniqueEmail('main'), password: strongPassword }),
      });
      const body = (await res.json()) as { access_token: string; refresh_token: string };

      child.kill('SIGTERM');
      const code = await exit;

      expect(ready.status).toBe(200);
      expect(metrics).toMatch(/accounts_registrations_total\{result="email_taken",service="accounts"\} 0/);
      expect(metrics).toMatch(/accounts_resend_requests_total\{result="ignored",service="accounts"\} 0/);
      expect(metrics).toMatch(/mail_delivery_status_total\{status="sent",error_class="none",service="accounts"\} 0/);
      expect(res.status).toBe(201);
      expect(res.headers.get('x-request-id')).toBe('main-test-1');
      expect(code).toBe(0);
      const lines = stdout.trim().split('\n');
      for (const line of lines) expect(() => JSON.parse(line)).not.toThrow();
      expect(lines.some((l) => l.includes('"request_id":"main-test-1"'))).toBe(true);
      expect(lines.some((l) => l.includes('"msg":"stopped all"'))).toBe(true);
      for (const secret of [strongPassword, body.access_token, body.refresh_token])
        expect(stdout).not.toContain(secret);
    },
  );
});
