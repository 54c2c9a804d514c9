/**
 * The series of one metric in Prometheus text exposition format (what `/metrics` serves), with their
 * labels, so a test can check the label names dashboards and alerts select on, not only a value.
 * `name` is the sample name as exposed: a histogram's `_count`, `_sum` or `_bucket`, a counter's name.
 */
export type MetricSeries = { labels: Record<string, string>; value: number };

const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

export function metricSeries(exposition: string, name: string): MetricSeries[] {
  const series: MetricSeries[] = [];
  for (const line of exposition.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const labelled = line.startsWith(`${name}{`);
    const close = line.lastIndexOf('}');
    const labels: Record<string, string> = {};
    // Label values are quoted with \\, \" and \n escaped (the exposition format's only escapes).
    for (const m of (labelled ? line.slice(name.length + 1, close) : '').matchAll(LABEL)) {
      labels[m[1] as string] = (m[2] as string).replace(/\\(["\\n])/g, (_, c: string) => (c === 'n' ? '\n' : c));
    }
    const [sample] = line
      .slice(labelled ? close + 1 : name.length)
      .trim()
      .split(/\s+/);
    series.push({ labels, value: Number(sample) });
  }
  return series;
}

/** The distinct label-name sets of a metric's series, each sorted (e.g. `[['method', 'route', ...]]`). */
export function labelNameSets(exposition: string, name: string): string[][] {
  const sets = new Set(metricSeries(exposition, name).map((s) => JSON.stringify(Object.keys(s.labels).sort())));
  return [...sets].map((s) => JSON.parse(s) as string[]);
}
