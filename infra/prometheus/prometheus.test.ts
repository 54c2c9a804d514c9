import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { KNOWN_METRICS, loadAlertRules, loadDashboard, metricNamesIn } from './metric-catalog';

/**
 * The operations layer checked without a running stack: promtool validates the configs and runs the
 * alert unit tests; the dashboard and the alerts may only use the contract's metric names; every
 * alert links to a runbook section that exists.
 */

const ROOT = path.join(__dirname, '..', '..');
const PROM_DIR = __dirname;
const RUNBOOK = path.join(ROOT, 'docs', 'runbook.md');

const EXPECTED_ALERTS = [
  'SmtpCircuitOpen',
  'SmtpOnFallback',
  'MailSmtpTimeoutRatioHigh',
  'MailSmtpConnectionFailureRatioHigh',
  'MailSmtpAuthFailureRatioHigh',
  'MailDeadLettered',
  'OutboxOldestUnpublishedTooOld',
  'OutboxBacklogGrowing',
  'DeliveryStatusNotConsumed',
  'RegistrationLatencyHigh',
  'ServiceDown',
];

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens. */
function runbookAnchors(): Set<string> {
  const anchors = new Set<string>();
  for (const line of readFileSync(RUNBOOK, 'utf8').split('\n')) {
    const heading = /^#{1,6}\s+(.+?)\s*#*$/.exec(line)?.[1];
    if (heading) {
      anchors.add(
        heading
          .toLowerCase()
          .replace(/[^\p{L}\p{N}\s_-]/gu, '')
          .replace(/\s/g, '-'),
      );
    }
    for (const m of line.matchAll(/<a\s+(?:id|name)="([^"]+)"/g)) if (m[1]) anchors.add(m[1]);
  }
  return anchors;
}

function promtool(args: string[]): { status: number | null; output: string } {
  const result = spawnSync('promtool', args, { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
  if (result.error && (result.error as NodeJS.ErrnoException).code === 'ENOENT') {
    // Deliberately a failure, not a skip: CI must install it (Debian: apt-get install -y prometheus).
    throw new Error(
      "promtool is not installed. Install Debian's prometheus package, which ships it: apt-get install -y prometheus",
    );
  }
  if (result.error) throw result.error;
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

describe('promtool', () => {
  test.each(['infra/prometheus/prometheus.yml', 'infra/prometheus/prometheus.docker.yml'])(
    'accepts %s and its rule file',
    (file) => {
      const { status, output } = promtool(['check', 'config', file]);
      expect({ status, output }).toEqual({ status: 0, output: expect.stringContaining('SUCCESS') });
    },
  );

  test('accepts the alert rules', () => {
    const { status, output } = promtool(['check', 'rules', 'infra/prometheus/alerts.yml']);
    expect({ status, output }).toEqual({ status: 0, output: expect.stringContaining('SUCCESS') });
  });

  test('passes the alert unit tests: each alert fires on an incident and stays silent when healthy', () => {
    const { status, output } = promtool(['test', 'rules', 'infra/prometheus/alerts.test.yml']);
    expect({ status, output }).toEqual({ status: 0, output: expect.stringContaining('SUCCESS') });
  });
});

describe('scrape configs', () => {
  type Config = {
    rule_files: string[];
    scrape_configs: { job_name: string; static_configs: { targets: string[] }[] }[];
  };
  const load = (file: string) => parseYaml(readFileSync(path.join(PROM_DIR, file), 'utf8')) as Config;
  const targets = (config: Config) =>
    Object.fromEntries(config.scrape_configs.map((s) => [s.job_name, s.static_configs.flatMap((c) => c.targets)]));

  test(
    'the local config scrapes the three services on 127.0.0.1 (accounts on its ops port, never the API port) ' +
      'and Prometheus itself',
    () => {
      expect(targets(load('prometheus.yml'))).toEqual({
        accounts: ['127.0.0.1:3010'],
        relay: ['127.0.0.1:3001'],
        mailer: ['127.0.0.1:3002'],
        prometheus: ['127.0.0.1:9090'],
      });
    },
  );

  test('the docker config is the same config with the compose service names', () => {
    const local = load('prometheus.yml');
    const docker = load('prometheus.docker.yml');
    expect(targets(docker)).toEqual({
      accounts: ['accounts:3010'],
      relay: ['relay:3001'],
      mailer: ['mailer:3002'],
      prometheus: ['localhost:9090'],
    });
    const withoutTargets = (c: Config) => ({
      ...c,
      scrape_configs: c.scrape_configs.map((s) => ({ ...s, static_configs: [] })),
    });
    expect(withoutTargets(docker)).toEqual(withoutTargets(local));
  });
});

describe('metric names', () => {
  test('the extractor finds metrics and ignores functions, labels, ranges and numbers', () => {
    expect(
      metricNamesIn(
        'histogram_quantile(0.99, sum by (job, le) (rate(http_request_duration_seconds_bucket{route="/api/v1/usr/register"}[5m]))) > 1 ' +
          'or sum(rate(mail_sent_total{error_class!="circuit_open"}[$__rate_interval])) * 60 unless up offset 15m > 1e3',
      ),
    ).toEqual(['http_request_duration_seconds', 'mail_sent_total', 'up']);
  });

  test('every alert uses only the contract metric names', () => {
    const unknown = loadAlertRules().flatMap((r) =>
      metricNamesIn(r.expr)
        .filter((n) => !KNOWN_METRICS.has(n))
        .map((n) => `${r.alert}: ${n}`),
    );
    expect(unknown).toEqual([]);
  });

  test('every dashboard query uses only the contract metric names', () => {
    const panels = loadDashboard().panels.flatMap((p) => [p, ...(p.panels ?? [])]);
    const unknown = panels.flatMap((p) =>
      (p.targets ?? []).flatMap((t) =>
        metricNamesIn(t.expr)
          .filter((n) => !KNOWN_METRICS.has(n))
          .map((n) => `${p.title}: ${n}`),
      ),
    );
    expect(unknown).toEqual([]);
  });
});

describe('alerts', () => {
  test("the issue's alerts exist, each once", () => {
    expect(
      loadAlertRules()
        .map((r) => r.alert)
        .sort(),
    ).toEqual([...EXPECTED_ALERTS].sort());
  });

  test('every alert has a severity, a summary, a description and a runbook link to an existing section', () => {
    const anchors = runbookAnchors();
    const problems = loadAlertRules().flatMap((rule) => {
      const found: string[] = [];
      if (!['critical', 'warning', 'info'].includes(rule.labels?.severity ?? '')) found.push('labels.severity');
      if (!rule.annotations?.summary) found.push('annotations.summary');
      if (!rule.annotations?.description) found.push('annotations.description');
      const anchor = /^docs\/runbook\.md#(.+)$/.exec(rule.annotations?.runbook_url ?? '')?.[1];
      if (!anchor) found.push('annotations.runbook_url (docs/runbook.md#<anchor>)');
      else if (!anchors.has(anchor)) found.push(`runbook anchor #${anchor} (no such heading in docs/runbook.md)`);
      return found.map((f) => `${rule.alert}: ${f}`);
    });
    expect(problems).toEqual([]);
  });
});

describe('Grafana dashboard', () => {
  test('parses, is titled "SMTP health & outbox" with uid smtp-health-outbox', () => {
    const dashboard = loadDashboard();
    expect({ title: dashboard.title, uid: dashboard.uid }).toEqual({
      title: 'SMTP health & outbox',
      uid: 'smtp-health-outbox',
    });
  });

  test('every graph queries the provisioned Prometheus data source (uid prometheus)', () => {
    const provisioned = parseYaml(
      readFileSync(path.join(ROOT, 'infra', 'grafana', 'provisioning', 'datasources', 'prometheus.yml'), 'utf8'),
    ) as {
      datasources: { uid: string; url: string }[];
    };
    expect(provisioned.datasources.map((d) => [d.uid, d.url])).toEqual([['prometheus', 'http://prometheus:9090']]);
    const graphs = loadDashboard().panels.filter((p) => p.type !== 'row');
    expect(
      graphs.filter((p) => p.datasource?.uid !== 'prometheus' || (p.targets ?? []).length === 0).map((p) => p.title),
    ).toEqual([]);
  });

  test('shows the panels operators need during an SMTP or Kafka outage', () => {
    const exprs = loadDashboard()
      .panels.flatMap((p) => p.targets ?? [])
      .map((t) => t.expr)
      .join('\n');
    for (const metric of [
      'mail_smtp_circuit_state',
      'mail_send_duration_seconds_bucket',
      'mail_sent_total',
      'mail_retry_pending',
      'mail_end_to_end_seconds_bucket',
      'outbox_backlog',
      'outbox_oldest_unpublished_age_seconds',
      'outbox_commit_to_publish_seconds_bucket',
      'accounts_registrations_total',
      'http_request_duration_seconds_bucket{route="/api/v1/usr/register"}',
      'mail_dlq_records_total',
      'mail_duplicate_sends_total',
    ]) {
      expect(exprs).toContain(metric);
    }
  });
});
