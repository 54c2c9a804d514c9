import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { testBrokers, uniquePrefix } from '../../test/support/infra';
import { freePort } from '../../test/support/ports';
import type { System } from '../../test/support/system';
import { startTestStack, type TestStack } from '../../test/support/test-stack';
import { waitFor } from '../../test/support/wait-for';
import { referencedMetricNames } from './metric-catalog';

/**
 * A real Prometheus scraping the running services (real processes) every second with the project's
 * alert rules: what operators would see during an SMTP outage.
 */
type PromResult = { metric: Record<string, string>; value: [number, string] };
type PromAlert = { labels: Record<string, string>; state: 'pending' | 'firing' | 'inactive' };

describe('Prometheus against the running services', () => {
  let stack: TestStack | undefined;
  let system: System;
  let prometheus: ChildProcess | undefined;
  let promUrl = '';
  let workDir = '';

  const query = async (expr: string): Promise<PromResult[]> => {
    const res = await fetch(`${promUrl}/api/v1/query?query=${encodeURIComponent(expr)}`);
    const body = (await res.json()) as { status: string; data: { result: PromResult[] } };
    return body.data.result;
  };
  const register = async (label: string) => {
    const api = system.accountsUrls()[0] ?? '';
    const res = await fetch(`${api}/api/v1/usr/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        email: `${label}.${Date.now()}.${Math.random().toString(36).slice(2)}@example.test`,
        password: 'a long enough password',
      }),
    });
    expect(res.status).toBe(201);
  };

  beforeAll(async () => {
    const version = spawnSync('prometheus', ['--version'], { encoding: 'utf8' });
    if (version.status !== 0)
      throw new Error('prometheus is not installed: npm test installs it (scripts/test-prerequisites.sh)');
    stack = await startTestStack({
      brokers: testBrokers().join(','),
      topicPrefix: uniquePrefix('prom'),
      counts: { accounts: 1, relay: 1, mailer: 1 },
      env: {
        SMTP_TIMEOUT_MS: '500',
        BREAKER_VOLUME_THRESHOLD: '2',
        // Stays open for the test's duration once it opened: the alert needs it open.
        BREAKER_RESET_TIMEOUT_MS: '120000',
        MAIL_RETRY_BASE_MS: '200',
        MAIL_RETRY_MAX_MS: '1000',
        RELAY_POLL_INTERVAL_MS: '200',
      },
    });
    system = stack.system;
    workDir = mkdtempSync(path.join(tmpdir(), 'rp-prom-'));
    const port = await freePort();
    const targets = (name: string) =>
      system.instances
        .filter((i) => i.name === name)
        .map((i) => `'127.0.0.1:${i.opsPort}'`)
        .join(', ');
    const config = path.join(workDir, 'prometheus.yml');
    writeFileSync(
      config,
      [
        'global:',
        '  scrape_interval: 1s',
        '  evaluation_interval: 1s',
        'rule_files:',
        `  - ${path.join(__dirname, 'alerts.yml')}`,
        'scrape_configs:',
        ...['accounts', 'relay', 'mailer'].flatMap((job) => [
          `  - job_name: ${job}`,
          '    static_configs:',
          `      - targets: [${targets(job)}]`,
        ]),
        '',
      ].join('\n'),
    );
    prometheus = spawn(
      'prometheus',
      [
        `--config.file=${config}`,
        `--storage.tsdb.path=${path.join(workDir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
      ],
      { stdio: 'ignore' },
    );
    promUrl = `http://127.0.0.1:${port}`;
    await waitFor(async () => (await fetch(`${promUrl}/-/ready`)).status === 200, {
      timeoutMs: 30_000,
      message: 'Prometheus ready',
    });
  }, 180_000);

  afterAll(async () => {
    prometheus?.kill('SIGTERM');
    await stack?.stop();
    if (workDir) rmSync(workDir, { recursive: true, force: true });
  });

  it('scrapes all three services (up == 1)', async () => {
    const up = await waitFor(
      async () => {
        const r = await query('up == 1');
        return r.length === 3 && r;
      },
      { timeoutMs: 30_000, message: 'three targets up' },
    );
    expect(up.map((r) => r.metric.job).sort()).toEqual(['accounts', 'mailer', 'relay']);
  });

  it('every metric the dashboard and the alerts name is exported by a running service', async () => {
    await register('healthy');
    await waitFor(() => system.smtp.messages.length >= 1, { timeoutMs: 30_000, message: 'one mail delivered' });
    const exposition = (
      await Promise.all(system.instances.map(async (i) => (await fetch(`${i.opsUrl}/metrics`)).text()))
    ).join('\n');
    const missing = referencedMetricNames().filter(
      (name) => name !== 'up' && !new RegExp(`^# TYPE ${name} `, 'm').test(exposition),
    );
    expect(missing).toEqual([]);
  });

  it('when SMTP stalls, Prometheus sees the breaker open and the SmtpCircuitOpen alert goes pending', async () => {
    await system.smtp.setFault({ mode: 'stall-connect' });
    for (let i = 0; i < 4; i++) await register('stalled');

    const open = await waitFor(
      async () => {
        const r = await query('mail_smtp_circuit_state == 2');
        return r.length > 0 && r;
      },
      { timeoutMs: 60_000, message: 'mail_smtp_circuit_state == 2 in Prometheus' },
    );
    expect(open[0]?.metric.job).toBe('mailer');

    const alert = await waitFor(
      async () => {
        const res = await fetch(`${promUrl}/api/v1/alerts`);
        const body = (await res.json()) as { data: { alerts: PromAlert[] } };
        return body.data.alerts.find(
          (a) => a.labels.alertname === 'SmtpCircuitOpen' && (a.state === 'pending' || a.state === 'firing'),
        );
      },
      { timeoutMs: 30_000, message: 'SmtpCircuitOpen pending or firing' },
    );
    expect(alert.labels.severity).toBe('critical');

    // The timeouts that opened it are visible by class too.
    const timeouts = await query('sum(mail_sent_total{result="deferred", error_class=~"timeout|circuit_open"})');
    expect(Number(timeouts[0]?.value[1] ?? 0)).toBeGreaterThan(0);
  }, 120_000);
});
