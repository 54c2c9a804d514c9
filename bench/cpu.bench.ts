import http from 'node:http';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { startSystem, type System } from '../test/support/system';
import type { ServiceName } from '../infra/dev/service-process';
import { closedLoop, postJson } from './load';
import { round, type Bench, type BenchContext, type BenchRow } from './lib';
import {
  CpuSampler,
  databaseOf,
  jitCompilerCpuMs,
  mainThreadCpuMs,
  postgresBackends,
  treesOf,
  type ComponentUsage,
  type PidSource,
} from './proc-stats';

/**
 * CPU per registration, measured from /proc over the run (bench/proc-stats.ts), for
 *  1. accounts alone: one accounts process (the relay and mailer not running) and its PostgreSQL
 *     backends — what a registration costs the request path itself, argon2 included;
 *  2. the whole stack: accounts, relay, mailer, the Kafka JVM and every PostgreSQL backend of the
 *     stack's database, from the start of the load until every mail of it was accepted by SMTP and its
 *     `sent` status recorded by accounts (so the cost of delivering each mail is in the figure).
 * Same load for both (closed loop, BENCH_CONCURRENCY clients over keep-alive HTTP), same run. The load
 * generator and the SMTP test server run in this process and are not charged. Targets (issue 15):
 * stack ÷ accounts-alone CPU per registration <= 1.25, stack registrations/s >= 0.8 × accounts alone.
 *
 * BENCH_CPU_PROF=<dir> runs the services with `node --cpu-prof` (profiles written to <dir> at stop);
 * BENCH_NODE_ARGS='--flag …' adds node/V8 flags to every service of both phases (to compare flags).
 * `kafka_jit_cpu_ms_per_reg` is the part of the Kafka JVM's figure spent by its JIT compiler threads.
 */
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 16);
const PASSWORD = 'correct horse battery staple';
const DRAIN_TIMEOUT_MS = 120_000;
const IDLE_MS = 10_000;
/*
 * 60 s of warm-up at the measured load before each phase's window. V8 keeps optimizing functions for
 * about a minute at these rates: with the V8 code log (`--log-code`), the relay's TurboFan compilations
 * per 10 s fell 87, 71, 61, 32, 19, 13 over the first minute and then to 1-2; after a 10 s warm-up the
 * window still held ~70 of them (relay) and ~100 (mailer). That one-time cost is a process's start,
 * not a registration's (docs/performance.md, fifth round). BENCH_CPU_WARM_UP_MS overrides it.
 */
const WARM_UP_MS = Number(process.env.BENCH_CPU_WARM_UP_MS ?? 60_000);
/** BENCH_NODE_ARGS: extra node flags for every service of both phases (e.g. V8 flags to compare). */
const EXTRA_NODE_ARGS = (process.env.BENCH_NODE_ARGS ?? '').split(/\s+/).filter(Boolean);

type Phase = {
  /** Each component while the stack is up with no load (idle polling, JVM), over `seconds`. */
  idle: { seconds: number; components: Record<string, ComponentUsage> };
  registrations: number;
  per_s: number;
  p50_ms: number;
  p99_ms: number;
  seconds: number;
  components: Record<string, ComponentUsage>;
  rss: Record<string, number>;
  /** CPU ms of the Kafka JVM's JIT compiler threads in the window (part of its figure). */
  kafkaJitMs: number;
  /** CPU ms of accounts' main thread in the window; the rest of its figure is argon2's pool and V8's helpers. */
  accountsMainMs: number;
};

/** Component name -> pids: each service's process tree, the Kafka JVM (when the run owns it), PostgreSQL backends. */
function components(ctx: BenchContext, system: System, databaseUrl: string) {
  const of = (name: ServiceName): PidSource =>
    treesOf(() => system.instances.filter((i) => i.name === name).map((i) => i.proc?.pid));
  const postgres = postgresBackends(ctx.adminUrl, [databaseOf(databaseUrl)]);
  const sources: Record<string, PidSource> = {
    accounts: of('accounts'),
    relay: of('relay'),
    mailer: of('mailer'),
    postgres,
  };
  if (ctx.brokerPid !== undefined) sources.kafka = treesOf(() => [ctx.brokerPid]);
  return { sources, close: postgres.close };
}

async function countWhere(databaseUrl: string, sql: string): Promise<number> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    return (await client.query<{ n: number }>(sql)).rows[0]?.n ?? 0;
  } finally {
    await client.end();
  }
}

/** One phase: warm-up, then a measured closed loop; with mail, the window ends when every status is `sent`. */
async function runPhase(ctx: BenchContext, label: string, withMail: boolean): Promise<Phase> {
  const db = await ctx.createDatabase();
  const counts = withMail ? { accounts: 1, relay: 1, mailer: 1 } : { accounts: 1, relay: 0, mailer: 0 };
  const profileDir = process.env.BENCH_CPU_PROF;
  const system = await startSystem({
    databaseUrl: db.url,
    brokers: ctx.brokers.join(','),
    topicPrefix: ctx.uniquePrefix(`cpu-${label}`),
    counts,
    env: { LOG_LEVEL: 'warn' },
    nodeArgs: (service: string) => [
      ...EXTRA_NODE_ARGS,
      ...(profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}/${label}/${service.replace('#', '-')}`] : []),
    ],
  });
  const { sources, close } = components(ctx, system, db.url);
  const sampler = new CpuSampler(sources);
  const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });
  const tag = randomBytes(3).toString('hex');
  const api = `${system.accountsUrls()[0] ?? ''}/api/v1/usr/register`;
  const register = async (i: number, kind: string) =>
    (await postJson(
      agent,
      api,
      JSON.stringify({ email: `${kind}.${tag}.${i}@example.test`, password: PASSWORD, first_name: 'Bench' }),
    )) === 201;
  try {
    // Warm-up at the measured load: the services' and the Kafka JVM's JIT compilers do their work here,
    // not inside the window (the figures are for a stack at steady load).
    const warmMs = Math.max(2_000, Math.round(WARM_UP_MS * ctx.scale));
    await closedLoop({ concurrency: CONCURRENCY, durationMs: warmMs, request: (i) => register(i, 'warm') });
    if (withMail) await waitAllSent(db.url);
    await sampler.start();
    await new Promise((r) => setTimeout(r, IDLE_MS));
    const idle = await sampler.stop();
    const durationMs = Math.max(3_000, Math.round(15_000 * ctx.scale));
    ctx.log(`cpu: ${label}: ${durationMs} ms at concurrency ${CONCURRENCY}...`);
    const jitAt = (): number => (ctx.brokerPid === undefined ? 0 : jitCompilerCpuMs(ctx.brokerPid));
    const jitBefore = jitAt();
    const accountsPid = system.instances.find((i) => i.name === 'accounts')?.proc?.pid;
    const mainAt = (): number => (accountsPid === undefined ? 0 : mainThreadCpuMs(accountsPid));
    const mainBefore = mainAt();
    await sampler.start();
    const load = await closedLoop({ concurrency: CONCURRENCY, durationMs, request: (i) => register(i, 'load') });
    const rss = await sampler.rssNow();
    if (withMail) await waitAllSent(db.url);
    const { seconds, components: usage } = await sampler.stop();
    const kafkaJitMs = jitAt() - jitBefore;
    const accountsMainMs = mainAt() - mainBefore;
    ctx.log(`cpu: ${label}: ${load.ok} registrations, window ${round(seconds, 1)} s`);
    return {
      idle,
      registrations: load.ok,
      per_s: load.per_s,
      p50_ms: load.p50_ms,
      p99_ms: load.p99_ms,
      seconds,
      components: usage,
      rss,
      kafkaJitMs,
      accountsMainMs,
    };
  } finally {
    agent.destroy();
    await close();
    await system.stop();
    await db.drop();
  }
}

async function waitAllSent(databaseUrl: string): Promise<void> {
  const deadline = Date.now() + DRAIN_TIMEOUT_MS;
  const sql = `SELECT (SELECT count(*) FROM mail_delivery_status WHERE status <> 'sent')::int
                    + (SELECT count(*) FROM outbox)::int AS n`;
  while ((await countWhere(databaseUrl, sql)) > 0) {
    if (Date.now() > deadline) throw new Error(`mail not all delivered within ${DRAIN_TIMEOUT_MS} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Accounts' figure split: its event loop, and the rest (argon2 on libuv's pool, V8's GC and compiler threads). */
const accountsThreads = (p: Phase) => {
  const n = Math.max(1, p.registrations);
  const main = p.accountsMainMs / n;
  return {
    accounts_main_thread_cpu_ms_per_reg: round(main, 2),
    accounts_other_threads_cpu_ms_per_reg: round((p.components.accounts?.cpu_ms ?? 0) / n - main, 2),
  };
};

/** CPU ms (or wake-ups: what a registration costs in hand-offs) of these components per registration. */
const perRegistration = (p: Phase, names: string[], of: 'cpu_ms' | 'wakeups' = 'cpu_ms') =>
  names.reduce((sum, n) => sum + (p.components[n]?.[of] ?? 0), 0) / Math.max(1, p.registrations);

export const bench: Bench = {
  name: 'cpu per registration',
  run: async (ctx): Promise<BenchRow[]> => {
    const alone = await runPhase(ctx, 'accounts-alone', false);
    const stack = await runPhase(ctx, 'stack', true);
    const aloneNames = ['accounts', 'postgres'];
    const stackNames = ['accounts', 'relay', 'mailer', 'kafka', 'postgres'];
    const aloneMs = perRegistration(alone, aloneNames);
    const stackMs = perRegistration(stack, stackNames);
    const cpuRatio = stackMs / aloneMs;
    const rateRatio = stack.per_s / alone.per_s;
    const breakdown = (p: Phase, names: string[]) =>
      Object.fromEntries(names.map((n) => [`${n}_cpu_ms_per_reg`, round(perRegistration(p, [n]), 2)]));
    const rss = (p: Phase, names: string[]) =>
      Object.fromEntries(names.filter((n) => n in p.rss).map((n) => [`${n}_rss_mb`, round(p.rss[n] ?? 0, 0)]));
    const name = 'CPU per registration';
    const kafkaNote =
      ctx.brokerPid === undefined
        ? ' (Kafka JVM not charged: BENCH_KAFKA_BROKERS names a broker this run does not own)'
        : '';
    return [
      {
        benchmark: name,
        case: `accounts alone (accounts + its PostgreSQL backends) x${CONCURRENCY}`,
        metrics: {
          registrations_per_s: alone.per_s,
          p99_ms: alone.p99_ms,
          registrations: alone.registrations,
          cpu_ms_per_reg: round(aloneMs, 2),
          ...breakdown(alone, aloneNames),
          ...accountsThreads(alone),
          ...rss(alone, ['accounts']),
        },
      },
      {
        benchmark: name,
        case: `whole stack, every mail delivered and its status recorded x${CONCURRENCY}${kafkaNote}`,
        metrics: {
          registrations_per_s: stack.per_s,
          p99_ms: stack.p99_ms,
          registrations: stack.registrations,
          window_s: round(stack.seconds, 1),
          cpu_ms_per_reg: round(stackMs, 2),
          ...breakdown(stack, stackNames),
          ...accountsThreads(stack),
          ...(ctx.brokerPid === undefined
            ? {}
            : { kafka_jit_cpu_ms_per_reg: round(stack.kafkaJitMs / Math.max(1, stack.registrations), 2) }),
          ...rss(stack, ['accounts', 'relay', 'mailer', 'kafka']),
        },
      },
      {
        benchmark: name,
        case: `wake-ups per registration (threads put to sleep and woken, from /proc): accounts alone; whole stack`,
        metrics: {
          alone_total_per_reg: round(perRegistration(alone, aloneNames, 'wakeups'), 1),
          stack_total_per_reg: round(perRegistration(stack, stackNames, 'wakeups'), 1),
          ...Object.fromEntries(
            stackNames.map((n) => [`${n}_per_reg`, round(perRegistration(stack, [n], 'wakeups'), 1)]),
          ),
        },
      },
      {
        benchmark: name,
        case: `whole stack idle (no load, ${IDLE_MS / 1000} s): CPU ms and wake-ups per second`,
        metrics: Object.fromEntries(
          stackNames.flatMap((n) => [
            [`${n}_cpu_ms_per_s`, round((stack.idle.components[n]?.cpu_ms ?? 0) / stack.idle.seconds, 1)],
            [`${n}_wakeups_per_s`, round((stack.idle.components[n]?.wakeups ?? 0) / stack.idle.seconds, 0)],
          ]),
        ),
      },
      {
        benchmark: name,
        case: 'whole stack ÷ accounts alone',
        metrics: { cpu_ratio: round(cpuRatio, 2), throughput_ratio: round(rateRatio, 2) },
        verdict:
          `CPU/registration target <= 1.25: ${round(cpuRatio, 2)} (${cpuRatio <= 1.25 ? 'met' : 'not met'}); ` +
          `registrations/s target >= 0.8: ${round(rateRatio, 2)} (${rateRatio >= 0.8 ? 'met' : 'not met'})`,
      },
    ];
  },
};
