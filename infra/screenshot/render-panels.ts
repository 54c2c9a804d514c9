/**
 * Renders Prometheus range queries as a small static dashboard page (inline SVG line charts, no
 * external assets) that headless Chromium can photograph: the README's operations picture shows what
 * an operator's dashboard shows, from real data, without a Grafana server.
 */
export type Panel = { title: string; expr: string; unit?: string };
type Series = { metric: Record<string, string>; values: [number, string][] };

const COLORS = [
  '#d62728',
  '#1f77b4',
  '#2ca02c',
  '#ff7f0e',
  '#9467bd',
  '#8c564b',
  '#e377c2',
  '#17becf',
  '#7f7f7f',
  '#bcbd22',
];

export async function queryRange(
  prometheus: string,
  expr: string,
  start: number,
  end: number,
  stepS: number,
): Promise<Series[]> {
  const url = new URL('/api/v1/query_range', prometheus);
  url.searchParams.set('query', expr);
  url.searchParams.set('start', String(start));
  url.searchParams.set('end', String(end));
  url.searchParams.set('step', String(stepS));
  const res = await fetch(url);
  const body = (await res.json()) as { status: string; error?: string; data?: { result: Series[] } };
  if (body.status !== 'success' || !body.data) throw new Error(`query ${expr} failed: ${body.error ?? res.status}`);
  return body.data.result;
}

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function chart(
  panel: Panel,
  series: Series[],
  start: number,
  end: number,
  marks: { at: number; label: string }[],
): string {
  const w = 640;
  const h = 220;
  const pad = { l: 48, r: 10, t: 10, b: 22 };
  const points = series.map((s) =>
    s.values.map(([t, v]) => [t, Number(v)] as const).filter(([, v]) => Number.isFinite(v)),
  );
  const max = Math.max(1e-9, ...points.flat().map(([, v]) => v));
  const x = (t: number) => pad.l + ((t - start) / (end - start)) * (w - pad.l - pad.r);
  const y = (v: number) => h - pad.b - (v / max) * (h - pad.t - pad.b);
  const lines = points
    .map(
      (pts, i) =>
        `<polyline fill="none" stroke="${COLORS[i % COLORS.length]}" stroke-width="2" points="${pts.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(' ')}"/>`,
    )
    .join('');
  const grid = [0, 0.5, 1]
    .map(
      (f) =>
        `<line x1="${pad.l}" x2="${w - pad.r}" y1="${y(max * f)}" y2="${y(max * f)}" stroke="#ddd"/><text x="${pad.l - 4}" y="${y(max * f) + 4}" text-anchor="end" font-size="10">${+(max * f).toPrecision(3)}</text>`,
    )
    .join('');
  const markLines = marks
    .map(
      (m) =>
        `<line x1="${x(m.at)}" x2="${x(m.at)}" y1="${pad.t}" y2="${h - pad.b}" stroke="#999" stroke-dasharray="4 3"/><text x="${x(m.at) + 3}" y="${pad.t + 10}" font-size="10" fill="#555">${esc(m.label)}</text>`,
    )
    .join('');
  const legend = series
    .map((s, i) => {
      const labels = Object.entries(s.metric).filter(([k]) => !['__name__', 'instance', 'job', 'service'].includes(k));
      const name = labels.length ? labels.map(([k, v]) => `${k}=${v}`).join(', ') : panel.title;
      return `<span style="color:${COLORS[i % COLORS.length]}">■</span> ${esc(name)}`;
    })
    .join('<br>');
  return `<section><h2>${esc(panel.title)}${panel.unit ? ` <small>(${esc(panel.unit)})</small>` : ''}</h2><code>${esc(panel.expr)}</code>
<svg width="${w}" height="${h}">${grid}${markLines}${lines}</svg><div class="legend">${legend || '<i>no data</i>'}</div></section>`;
}

export async function renderDashboardHtml(opts: {
  prometheus: string;
  title: string;
  panels: Panel[];
  start: number;
  end: number;
  stepS: number;
  marks: { at: number; label: string }[];
  alerts: { name: string; state: string; severity?: string; at: string }[];
}): Promise<string> {
  const sections: string[] = [];
  for (const panel of opts.panels)
    sections.push(
      chart(
        panel,
        await queryRange(opts.prometheus, panel.expr, opts.start, opts.end, opts.stepS),
        opts.start,
        opts.end,
        opts.marks,
      ),
    );
  const alertRows = opts.alerts
    .map(
      (a) =>
        `<tr><td>${esc(a.at)}</td><td><b>${esc(a.name)}</b></td><td class="${esc(a.state)}">${esc(a.state)}</td><td>${esc(a.severity ?? '')}</td></tr>`,
    )
    .join('');
  return `<!doctype html><meta charset="utf-8"><title>${esc(opts.title)}</title>
<style>body{font-family:sans-serif;margin:16px;width:1340px}h1{font-size:20px}h2{font-size:14px;margin:4px 0}code{font-size:10px;color:#555}
.grid{display:grid;grid-template-columns:1fr 1fr;gap:12px}section{border:1px solid #ccc;padding:8px;border-radius:4px}.legend{font-size:11px}
table{border-collapse:collapse;font-size:12px;margin-bottom:12px}td,th{border:1px solid #ccc;padding:3px 8px}.firing{color:#fff;background:#d62728}.pending{background:#ffbf00}</style>
<h1>${esc(opts.title)}</h1>
<table><tr><th>seen at</th><th>alert</th><th>state</th><th>severity</th></tr>${alertRows || '<tr><td colspan="4">no alert</td></tr>'}</table>
<div class="grid">${sections.join('\n')}</div>`;
}
