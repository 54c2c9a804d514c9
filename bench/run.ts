import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { startKafkaBroker, type BrokerHandle } from '../infra/kafka/broker';
import { migrate } from '../scripts/migrate';
import { freePort } from '../test/support/ports';
import type { Bench, BenchContext, BenchRow } from './lib';

/**
 * `npm run bench`: provides PostgreSQL (BENCH_DATABASE_URL or the local server) and a Kafka broker
 * (BENCH_KAFKA_BROKERS or one launched from infra/kafka), runs every bench/*.bench.ts (or those named
 * on the command line), prints one table and writes bench/results/<date>.json and latest.md.
 * BENCH_SCALE=0.1 gives a quick smoke run.
 */
async function main(): Promise<void> {
  // Ctrl-C: exit through process.exit so the 'exit' hooks stop every process and broker started.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130));
  const only = process.argv.slice(2);
  const scale = Number(process.env.BENCH_SCALE ?? 1);
  const adminUrl = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
  const log = (line: string) => process.stderr.write(`[bench] ${line}\n`);

  const files = readdirSync(__dirname)
    .filter((f) => f.endsWith('.bench.ts'))
    .filter((f) => only.length === 0 || only.some((o) => f.startsWith(o)))
    .sort();
  if (files.length === 0) throw new Error(`no bench/*.bench.ts matches ${only.join(', ')}`);

  let broker: BrokerHandle | undefined;
  const workDir = mkdtempSync(path.join(tmpdir(), 'rp-bench-'));
  let brokers = process.env.BENCH_KAFKA_BROKERS?.split(',');
  if (!brokers) {
    log('starting a Kafka broker for the run...');
    broker = await startKafkaBroker({
      port: await freePort(),
      controllerPort: await freePort(),
      dataDir: path.join(workDir, 'kafka'),
    });
    brokers = [broker.brokers];
    // Even if a bench crashes the process, the broker it started must not outlive it.
    const pid = broker.pid;
    process.on('exit', () => {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already stopped
      }
    });
  }
  const runId = `rp_bench_${Date.now().toString(36)}`;
  const created: string[] = [];
  const admin = async <T>(fn: (c: pg.Client) => Promise<T>): Promise<T> => {
    const c = new pg.Client({ connectionString: adminUrl });
    await c.connect();
    try {
      return await fn(c);
    } finally {
      await c.end();
    }
  };
  const ctx: BenchContext = {
    brokers,
    scale,
    log,
    adminUrl,
    ...(broker ? { brokerPid: broker.pid } : {}),
    uniquePrefix: (label) => `bench-${label}-${randomBytes(3).toString('hex')}.`,
    createDatabase: async () => {
      const name = `${runId}_${randomBytes(3).toString('hex')}`;
      await admin((c) => c.query(`CREATE DATABASE ${name}`));
      created.push(name);
      const u = new URL(adminUrl);
      u.pathname = `/${name}`;
      await migrate({ databaseUrl: u.toString() });
      return {
        url: u.toString(),
        drop: () => admin((c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)).then(() => undefined),
      };
    },
  };

  const rows: BenchRow[] = [];
  const started = new Date();
  try {
    for (const file of files) {
      const mod = (await import(path.join(__dirname, file))) as { bench: Bench };
      log(`running ${mod.bench.name} (${file})...`);
      const t0 = Date.now();
      const result = await mod.bench.run(ctx);
      rows.push(...result);
      log(`${mod.bench.name} done in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    }
  } finally {
    for (const name of created)
      await admin((c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)).catch(() => undefined);
    if (broker) await broker.stop();
    rmSync(workDir, { recursive: true, force: true });
  }

  const table = renderTable(rows);
  process.stdout.write(`\n${table}\n`);
  const resultsDir = path.join(__dirname, 'results');
  mkdirSync(resultsDir, { recursive: true });
  const stamp = started.toISOString().replace(/[:]/g, '-').replace(/\..+$/, '');
  const machine = {
    cpus: cpus().length,
    cpu_model: cpus()[0]?.model ?? 'unknown',
    memory_gib: Math.round(totalmem() / 2 ** 30),
    node: process.version,
  };
  const json = { started_at: started.toISOString(), scale, machine, rows };
  writeFileSync(path.join(resultsDir, `${stamp}.json`), `${JSON.stringify(json, null, 2)}\n`);
  writeFileSync(
    path.join(resultsDir, 'latest.md'),
    `Run ${started.toISOString()} (scale ${scale}; ${machine.cpus} cores, ${machine.cpu_model}, Node ${machine.node})\n\n${table}\n`,
  );
  log(`results written to bench/results/${stamp}.json and bench/results/latest.md`);
}

/** A Markdown table: one line per case, its figures, and the verdict against the target. */
export function renderTable(rows: BenchRow[]): string {
  const header = '| benchmark | case | figures | verdict |\n|---|---|---|---|';
  const lines = rows.map((r) => {
    const figures = Object.entries(r.metrics)
      .map(([k, v]) => `${k}=${Number.isInteger(v) ? v : v.toFixed(2)}`)
      .join(', ');
    return `| ${r.benchmark} | ${r.case} | ${figures} | ${r.verdict ?? ''} |`;
  });
  return [header, ...lines].join('\n');
}

main().catch((err: unknown) => {
  console.error(`[bench] failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  process.exit(1);
});
