import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parse, stringify } from 'yaml';
import { testBrokers, uniquePrefix } from '../../test/support/infra';
import { freePort } from '../../test/support/ports';
import { startSmtpTestServer, type SmtpTestServer } from '../../test/support/smtp-test-server';
import type { System } from '../../test/support/system';
import { startTestStack, type TestStack } from '../../test/support/test-stack';
import { waitFor } from '../../test/support/wait-for';

/**
 * Debian's Alertmanager with the project's alertmanager.yml, fed by a real Prometheus that scrapes the
 * running services with the project's alert rules: during an SMTP outage the admins' webhook gets
 * SmtpCircuitOpen firing, and a resolved notice once SMTP is back and the breaker closed.
 * The copies of the configs differ only in ports, URLs and shortened waits (`for`, group_wait, ...).
 */
type WebhookAlert = { status: 'firing' | 'resolved'; labels: Record<string, string> };
type WebhookPayload = { receiver: string; status: 'firing' | 'resolved'; alerts: WebhookAlert[] };
type Rule = { alert?: string; for?: string };
type RuleFile = { groups: { rules: Rule[] }[] };
type Receiver = { name: string; webhook_configs?: { url: string }[] };
type AlertmanagerConfig = {
  global: Record<string, unknown>;
  route: Record<string, unknown>;
  receivers: Receiver[];
};

const ALERTMANAGER = '/usr/bin/prometheus-alertmanager';

describe('Alertmanager against Prometheus and the running services', () => {
  let stack: TestStack | undefined;
  let system: System;
  let adminMail: SmtpTestServer;
  let prometheus: ChildProcess | undefined;
  let alertmanager: ChildProcess | undefined;
  let webhook: http.Server | undefined;
  let workDir = '';
  const received: { path: string; payload: WebhookPayload }[] = [];

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
  /** The admins' webhook notifications that carry SmtpCircuitOpen in the given state. */
  const adminNotices = (status: 'firing' | 'resolved') =>
    received.filter(
      (r) =>
        r.path === '/alerts' &&
        r.payload.receiver === 'admins' &&
        r.payload.alerts.some((a) => a.labels.alertname === 'SmtpCircuitOpen' && a.status === status),
    );

  beforeAll(async () => {
    for (const [bin, arg] of [
      ['prometheus', '--version'],
      [ALERTMANAGER, '--version'],
    ] as const) {
      if (spawnSync(bin, [arg]).status !== 0)
        throw new Error(`${bin} is not installed: npm test installs it (scripts/test-prerequisites.sh)`);
    }
    stack = await startTestStack({
      brokers: testBrokers().join(','),
      topicPrefix: uniquePrefix('am'),
      counts: { accounts: 1, relay: 1, mailer: 1 },
      env: {
        SMTP_TIMEOUT_MS: '500',
        BREAKER_VOLUME_THRESHOLD: '2',
        // Half-opens soon enough after SMTP recovers for the breaker to close within the test.
        BREAKER_RESET_TIMEOUT_MS: '5000',
        MAIL_MAX_ATTEMPTS: '100',
        MAIL_RETRY_BASE_MS: '200',
        MAIL_RETRY_MAX_MS: '1000',
        RELAY_POLL_INTERVAL_MS: '200',
      },
    });
    system = stack.system;
    // The admins' email goes to its own SMTP server, not the one the mailer uses (as in alertmanager.yml).
    adminMail = await startSmtpTestServer();
    webhook = http.createServer((req, res) => {
      let body = '';
      req.on('data', (chunk: Buffer) => (body += chunk.toString('utf8')));
      req.on('end', () => {
        try {
          received.push({ path: req.url ?? '', payload: JSON.parse(body) as WebhookPayload });
        } finally {
          res.writeHead(200).end();
        }
      });
    });
    await new Promise<void>((resolve) => webhook?.listen(0, '127.0.0.1', resolve));
    const hookUrl = `http://127.0.0.1:${(webhook.address() as AddressInfo).port}`;
    workDir = mkdtempSync(path.join(tmpdir(), 'rp-am-'));

    const amConfig = parse(readFileSync(path.join(__dirname, 'alertmanager.yml'), 'utf8')) as AlertmanagerConfig;
    Object.assign(amConfig.global, {
      resolve_timeout: '30s',
      smtp_smarthost: `127.0.0.1:${adminMail.port}`,
      smtp_require_tls: false,
    });
    Object.assign(amConfig.route, { group_wait: '1s', group_interval: '2s' });
    for (const receiver of amConfig.receivers)
      for (const hook of receiver.webhook_configs ?? []) hook.url = `${hookUrl}${new URL(hook.url).pathname}`;
    const amConfigFile = path.join(workDir, 'alertmanager.yml');
    writeFileSync(amConfigFile, stringify(amConfig));
    const amPort = await freePort();
    alertmanager = spawn(
      ALERTMANAGER,
      [
        `--config.file=${amConfigFile}`,
        `--storage.path=${path.join(workDir, 'am-data')}`,
        `--web.listen-address=127.0.0.1:${amPort}`,
        '--cluster.listen-address=',
      ],
      { stdio: 'ignore' },
    );

    const rules = parse(readFileSync(path.join(__dirname, '../prometheus/alerts.yml'), 'utf8')) as RuleFile;
    for (const rule of rules.groups.flatMap((g) => g.rules)) if (rule.alert === 'SmtpCircuitOpen') rule.for = '3s';
    const rulesFile = path.join(workDir, 'alerts.yml');
    writeFileSync(rulesFile, stringify(rules));
    const targets = (name: string) =>
      system.instances.filter((i) => i.name === name).map((i) => `127.0.0.1:${i.opsPort}`);
    const promConfig = {
      global: { scrape_interval: '1s', evaluation_interval: '1s' },
      alerting: { alertmanagers: [{ static_configs: [{ targets: [`127.0.0.1:${amPort}`] }] }] },
      rule_files: [rulesFile],
      scrape_configs: ['accounts', 'relay', 'mailer'].map((job) => ({
        job_name: job,
        static_configs: [{ targets: targets(job) }],
      })),
    };
    const promConfigFile = path.join(workDir, 'prometheus.yml');
    writeFileSync(promConfigFile, stringify(promConfig));
    const promPort = await freePort();
    prometheus = spawn(
      'prometheus',
      [
        `--config.file=${promConfigFile}`,
        `--storage.tsdb.path=${path.join(workDir, 'prom-data')}`,
        `--web.listen-address=127.0.0.1:${promPort}`,
      ],
      { stdio: 'ignore' },
    );
    for (const url of [`http://127.0.0.1:${amPort}/-/ready`, `http://127.0.0.1:${promPort}/-/ready`])
      await waitFor(async () => (await fetch(url)).status === 200, { timeoutMs: 30_000, message: `${url} ready` });
  }, 180_000);

  afterAll(async () => {
    prometheus?.kill('SIGTERM');
    alertmanager?.kill('SIGTERM');
    await new Promise<void>((resolve) => (webhook ? webhook.close(() => resolve()) : resolve()));
    await adminMail?.close();
    await stack?.stop();
    if (workDir) rmSync(workDir, { recursive: true, force: true });
  });

  it('when SMTP stalls, the admins webhook gets SmtpCircuitOpen firing, and resolved after SMTP recovers', async () => {
    await register('healthy');
    await waitFor(() => system.smtp.messages.length >= 1, { timeoutMs: 30_000, message: 'one mail delivered' });
    expect(adminNotices('firing')).toEqual([]);

    await system.smtp.setFault({ mode: 'stall-connect' });
    for (let i = 0; i < 4; i++) await register('stalled');
    const firing = await waitFor(() => adminNotices('firing')[0], {
      timeoutMs: 60_000,
      intervalMs: 500,
      message: 'SmtpCircuitOpen firing at the admins webhook',
    });
    const alert = firing.payload.alerts.find((a) => a.labels.alertname === 'SmtpCircuitOpen');
    expect(alert?.labels).toMatchObject({ severity: 'critical', job: 'mailer' });

    await system.smtp.setFault({ mode: 'healthy' });
    // Deferred mails retry on their own; fresh registrations keep traffic flowing for the half-open trial.
    const resolved = await waitFor(
      async () => {
        const notice = adminNotices('resolved')[0];
        if (!notice) await register('recovered');
        return notice;
      },
      { timeoutMs: 90_000, intervalMs: 2_000, message: 'SmtpCircuitOpen resolved at the admins webhook' },
    );
    expect(resolved.payload.status).toBe('resolved');
    expect(system.smtp.messages.length).toBeGreaterThan(1);
  }, 180_000);
});
