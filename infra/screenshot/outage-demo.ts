import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { migrate } from '../../scripts/migrate';
import { freePort } from '../../test/support/ports';
import { startSystem } from '../../test/support/system';
import { screenshot } from './dashboard-screenshot';
import { renderDashboardHtml } from './render-panels';

/**
 * Produces the README's operations picture from a real outage: the stack as processes, a real
 * Prometheus scraping it every second with the project's alert rules, registrations at a steady pace,
 * then the SMTP server stalls for a while and recovers. Chromium photographs Prometheus' graphs and
 * its alerts page.
 *
 *   npx tsx infra/screenshot/outage-demo.ts [--healthy-s 40] [--outage-s 90] [--recovery-s 40]
 *
 * Needs PostgreSQL on 127.0.0.1:5432, Java + Maven (Kafka), `prometheus` and `chromium` (Debian).
 */
const args = new Map(
  process.argv
    .slice(2)
    .reduce<[string, string][]>(
      (acc, a, i, all) => (a.startsWith('--') ? [...acc, [a.slice(2), all[i + 1] ?? '']] : acc),
      [],
    ),
);
const HEALTHY_S = Number(args.get('healthy-s') ?? 40);
const OUTAGE_S = Number(args.get('outage-s') ?? 90);
const RECOVERY_S = Number(args.get('recovery-s') ?? 40);
const OUT_DIR = path.resolve(args.get('out-dir') ?? path.join(__dirname, '..', '..', 'docs', 'img'));

const log = (line: string) => process.stderr.write(`[outage-demo] ${line}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function main(): Promise<void> {
  // Ctrl-C: exit through process.exit so the 'exit' hooks stop every process and broker started.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130));
  const adminUrl = 'postgres://postgres@127.0.0.1:5432/postgres';
  const dbName = `rp_demo_${Date.now().toString(36)}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${dbName}`);
  const u = new URL(adminUrl);
  u.pathname = `/${dbName}`;
  await migrate({ databaseUrl: u.toString() });
  const work = mkdtempSync(path.join(tmpdir(), 'rp-demo-'));
  log('starting the stack (accounts, relay, mailer, Kafka, SMTP test server)...');
  const system = await startSystem({
    databaseUrl: u.toString(),
    counts: { accounts: 1, relay: 1, mailer: 1 },
    env: {
      LOG_LEVEL: 'warn',
      SMTP_TIMEOUT_MS: '2000',
      BREAKER_RESET_TIMEOUT_MS: '10000',
      MAIL_RETRY_BASE_MS: '1000',
      MAIL_RETRY_MAX_MS: '10000',
      MAIL_MAX_ATTEMPTS: '30',
    },
  });
  const promPort = await freePort();
  const config = path.join(work, 'prometheus.yml');
  const target = (name: string) =>
    system.instances
      .filter((i) => i.name === name)
      .map((i) => `'127.0.0.1:${i.port}'`)
      .join(', ');
  writeFileSync(
    config,
    [
      'global:',
      '  scrape_interval: 1s',
      '  evaluation_interval: 1s',
      'rule_files:',
      `  - ${path.join(__dirname, '..', 'prometheus', 'alerts.yml')}`,
      'scrape_configs:',
      ...['accounts', 'relay', 'mailer'].flatMap((j) => [
        `  - job_name: ${j}`,
        '    static_configs:',
        `      - targets: [${target(j)}]`,
      ]),
      '',
    ].join('\n'),
  );
  const prometheus = spawn(
    'prometheus',
    [
      `--config.file=${config}`,
      `--storage.tsdb.path=${path.join(work, 'tsdb')}`,
      `--web.listen-address=127.0.0.1:${promPort}`,
    ],
    { stdio: 'ignore' },
  );
  const prom = `http://127.0.0.1:${promPort}`;
  let stop = false;
  try {
    const api = system.accountsUrls()[0] ?? '';
    let n = 0;
    const traffic = (async () => {
      while (!stop) {
        n += 1;
        await fetch(`${api}/api/v1/usr/register`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ email: `demo.${n}.${Date.now()}@example.test`, password: 'demo password 123' }),
        }).catch(() => undefined);
        await sleep(200);
      }
    })();
    const t0 = Date.now() / 1000;
    log(`healthy for ${HEALTHY_S} s...`);
    await sleep(HEALTHY_S * 1000);
    log(`SMTP stalls for ${OUTAGE_S} s...`);
    const tStall = Date.now() / 1000;
    await system.smtp.setFault({ mode: 'stall-connect' });
    // Alerts as Prometheus evaluates them during the outage (the rules' `for:` makes them pending first).
    const seen = new Map<string, { name: string; state: string; severity?: string; at: string }>();
    const watchUntil = Date.now() + OUTAGE_S * 1000;
    while (Date.now() < watchUntil) {
      const res = await fetch(`${prom}/api/v1/alerts`).catch(() => undefined);
      const body = res
        ? ((await res.json()) as { data: { alerts: { labels: Record<string, string>; state: string }[] } })
        : undefined;
      for (const a of body?.data.alerts ?? []) {
        const key = `${a.labels.alertname}/${a.state}`;
        if (!seen.has(key))
          seen.set(key, {
            name: a.labels.alertname ?? '?',
            state: a.state,
            severity: a.labels.severity,
            at: `outage +${Math.round(Date.now() / 1000 - tStall)} s`,
          });
      }
      await sleep(2000);
    }
    log(`SMTP recovers; ${RECOVERY_S} s more...`);
    const tRecover = Date.now() / 1000;
    await system.smtp.setFault({ mode: 'healthy' });
    await sleep(RECOVERY_S * 1000);
    const html = await renderDashboardHtml({
      prometheus: prom,
      title: `SMTP outage: ${OUTAGE_S} s of a stalled SMTP server under steady registrations (real Prometheus, 1 s scrapes)`,
      start: t0,
      end: Date.now() / 1000,
      stepS: 1,
      marks: [
        { at: tStall, label: 'SMTP stalls' },
        { at: tRecover, label: 'SMTP back' },
      ],
      alerts: [...seen.values()],
      panels: [
        { title: 'SMTP circuit breaker state', expr: 'mail_smtp_circuit_state', unit: '0 closed, 1 half-open, 2 open' },
        {
          title: 'Send attempts by result and class',
          expr: 'sum by (result, error_class) (rate(mail_sent_total[10s])) > 0',
          unit: 'per s',
        },
        { title: 'Retries pending', expr: 'mail_retry_pending', unit: 'mails' },
        {
          title: 'Registration p99',
          expr: 'histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{route="/api/v1/usr/register"}[10s])))',
          unit: 's',
        },
        { title: 'Registrations', expr: 'sum by (result) (rate(accounts_registrations_total[10s]))', unit: 'per s' },
        { title: 'Outbox backlog', expr: 'outbox_backlog', unit: 'rows' },
      ],
    });
    const htmlFile = path.join(work, 'dashboard.html');
    writeFileSync(htmlFile, html);
    const out = path.join(OUT_DIR, 'smtp-outage.png');
    screenshot({ url: `file://${htmlFile}`, out, width: 1380, height: 1080, budgetMs: 2000 });
    log(`wrote ${out} (${n} registrations, ${system.smtp.messages.length} mails delivered)`);
    stop = true;
    await traffic;
  } finally {
    stop = true;
    prometheus.kill('SIGTERM');
    await system.stop();
    await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
    await admin.end();
    rmSync(work, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(`[outage-demo] failed: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
