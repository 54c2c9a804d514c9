import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';

/**
 * Renders a Prometheus graph page to a PNG with headless Chromium, for the README and incident notes:
 *
 *   npx tsx infra/screenshot/dashboard-screenshot.ts --prometheus http://127.0.0.1:9090 \
 *     --expr mail_smtp_circuit_state --range 15m --out docs/img/smtp-circuit-state.png
 *
 * --expr may be repeated (one graph per expression, stacked on the page). Needs `chromium`
 * (Debian: apt-get install -y chromium) or CHROMIUM_BIN. Prometheus' UI is a React app that fetches
 * the data after load; --virtual-time-budget lets those requests finish before the capture.
 */

export function graphUrl(prometheus: string, exprs: readonly string[], range: string): string {
  const url = new URL('/graph', prometheus);
  exprs.forEach((expr, i) => {
    url.searchParams.set(`g${i}.expr`, expr);
    url.searchParams.set(`g${i}.tab`, '0'); // 0 = Graph, 1 = Table
    url.searchParams.set(`g${i}.range_input`, range);
  });
  return url.toString();
}

export function screenshot(opts: {
  url: string;
  out: string;
  width?: number;
  height?: number;
  budgetMs?: number;
  chromium?: string;
}): void {
  const userDataDir = mkdtempSync(path.join(tmpdir(), 'chromium-shot-'));
  mkdirSync(path.dirname(path.resolve(opts.out)), { recursive: true });
  try {
    const result = spawnSync(
      opts.chromium ?? 'chromium',
      [
        '--headless',
        // Containers run as root without user namespaces; the sandbox cannot start there.
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        // No update checks, sync or component downloads: the machine may have no internet.
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--hide-scrollbars',
        `--user-data-dir=${userDataDir}`,
        `--window-size=${opts.width ?? 1400},${opts.height ?? 900}`,
        `--virtual-time-budget=${opts.budgetMs ?? 5000}`,
        `--screenshot=${path.resolve(opts.out)}`,
        opts.url,
      ],
      { encoding: 'utf8', timeout: 60_000 },
    );
    if (result.error) {
      const missing = (result.error as NodeJS.ErrnoException).code === 'ENOENT';
      throw new Error(
        missing ? 'chromium not found: apt-get install -y chromium (or set CHROMIUM_BIN)' : result.error.message,
      );
    }
    let size = 0;
    try {
      size = statSync(opts.out).size;
    } catch {
      // reported below with chromium's own output
    }
    if (result.status !== 0 || size === 0) {
      throw new Error(`chromium exited ${result.status} without a screenshot:\n${result.stderr.slice(-2000)}`);
    }
  } finally {
    rmSync(userDataDir, { recursive: true, force: true });
  }
}

function main(): void {
  const { values } = parseArgs({
    options: {
      prometheus: { type: 'string', default: 'http://127.0.0.1:9090' },
      expr: { type: 'string', multiple: true },
      range: { type: 'string', default: '15m' },
      out: { type: 'string', default: 'docs/img/prometheus-graph.png' },
      width: { type: 'string', default: '1400' },
      height: { type: 'string', default: '900' },
    },
    strict: true,
  });
  const exprs = values.expr && values.expr.length > 0 ? values.expr : ['mail_smtp_circuit_state'];
  const url = graphUrl(values.prometheus ?? 'http://127.0.0.1:9090', exprs, values.range ?? '15m');
  const out = values.out ?? 'docs/img/prometheus-graph.png';
  screenshot({
    url,
    out,
    width: Number(values.width),
    height: Number(values.height),
    chromium: process.env.CHROMIUM_BIN,
  });
  console.log(`${out} (${Math.round(statSync(out).size / 1024)} KiB) <- ${url}`);
}

if (require.main === module) {
  try {
    main();
  } catch (err) {
    console.error(`dashboard-screenshot: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  }
}
