import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';

/**
 * What the dashboards and alerts may reference: the metric names the services export, and the
 * PromQL extractor that finds names in an expression. Shared by the static checks and the live test.
 */
const ROOT = path.join(__dirname, '..', '..');
const PROM_DIR = __dirname;
export const DASHBOARD = path.join(ROOT, 'infra', 'grafana', 'dashboards', 'smtp-health-outbox.json');

/** The metric names the services export (CONTRACT.md and issue 7); dashboards and alerts may use only these. */
export const HISTOGRAMS = [
  'http_request_duration_seconds',
  'outbox_commit_to_publish_seconds',
  'mail_send_duration_seconds',
  'mail_end_to_end_seconds',
];
export const KNOWN_METRICS = new Set([
  ...HISTOGRAMS,
  'accounts_registrations_total',
  'accounts_resend_requests_total',
  'mail_delivery_status_total',
  'accounts_invalid_events_total',
  'outbox_backlog',
  'outbox_oldest_unpublished_age_seconds',
  'outbox_published_total',
  'outbox_publish_errors_total',
  'outbox_dead_letters_total',
  'mail_sent_total',
  'mail_smtp_circuit_state',
  'mail_smtp_fallback_active',
  'mail_retry_pending',
  'mail_dlq_records_total',
  'mail_duplicate_sends_total',
  'mail_invalid_requests_total',
  'up',
]);

// Functions, aggregation operators and keywords of PromQL that look like identifiers.
const PROMQL_WORDS = new Set(
  (
    'abs absent absent_over_time avg avg_over_time bool bottomk ceil changes clamp clamp_max clamp_min ' +
    'count count_over_time count_values delta deriv exp floor group histogram_quantile holt_winters idelta ' +
    'increase irate label_join label_replace last_over_time ln log2 log10 max max_over_time min min_over_time ' +
    'offset predict_linear present_over_time quantile quantile_over_time rate resets round scalar sort ' +
    'sort_desc sqrt stddev stddev_over_time stdvar sum sum_over_time time ' +
    'timestamp topk vector and or unless inf nan'
  ).split(' '),
);

/** Metric names in a PromQL expression (histogram _bucket/_sum/_count folded to the histogram). */
export function metricNamesIn(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""') // label values may hold anything, e.g. a route
    .replace(/\{[^}]*\}/g, ' ') // label matchers
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ') // label lists
    .replace(/\[[^\]]*\]/g, ' ') // range selectors, Grafana's [$__rate_interval] included
    .replace(/\$\w+/g, ' ')
    .replace(/\b\d+(?:\.\d+)?(?:[eE][+-]?\d+|ms|[smhdwy])?\b/g, ' ');
  const names = new Set<string>();
  for (const token of stripped.match(/[a-zA-Z_:][a-zA-Z0-9_:]*/g) ?? []) {
    if (PROMQL_WORDS.has(token.toLowerCase())) continue;
    const histogram = /^(.*)_(?:bucket|sum|count)$/.exec(token)?.[1];
    names.add(histogram !== undefined && HISTOGRAMS.includes(histogram) ? histogram : token);
  }
  return [...names].sort();
}

export type AlertRule = {
  alert: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
};

export function loadAlertRules(): AlertRule[] {
  const doc = parseYaml(readFileSync(path.join(PROM_DIR, 'alerts.yml'), 'utf8')) as {
    groups: { rules: AlertRule[] }[];
  };
  return doc.groups.flatMap((g) => g.rules);
}

export type Panel = {
  title?: string;
  type: string;
  datasource?: { uid?: string };
  targets?: { expr: string }[];
  panels?: Panel[];
};
export type Dashboard = { title: string; uid: string; panels: Panel[] };

export function loadDashboard(): Dashboard {
  return JSON.parse(readFileSync(DASHBOARD, 'utf8')) as Dashboard;
}

function flattenPanels(panels: Panel[]): Panel[] {
  return panels.flatMap((p) => [p, ...flattenPanels(p.panels ?? [])]);
}

/** Every metric name the alert rules and the dashboard reference. */
export function referencedMetricNames(): string[] {
  const names = new Set<string>();
  for (const rule of loadAlertRules()) for (const n of metricNamesIn(rule.expr)) names.add(n);
  for (const panel of flattenPanels(loadDashboard().panels))
    for (const t of panel.targets ?? []) for (const n of metricNamesIn(t.expr)) names.add(n);
  return [...names].sort();
}
