import http from 'node:http';
import { randomBytes } from 'node:crypto';
import { Kafka, logLevel, type Admin } from 'kafkajs';
import pg from 'pg';
import { migrate } from './migrate';
import { startSystem, type System } from '../test/support/system';
import type { ServiceName } from '../infra/dev/service-process';
import { topicNames } from '../shared/src/topics';
import { closedLoop, postJson } from '../bench/load';
import { percentile, round } from '../bench/lib';
import {
  CpuSampler,
  databaseOf,
  median,
  postgresBackends,
  robustTrend,
  treesOf,
  youngGenerationMiB,
  type PidSource,
} from '../bench/proc-stats';

/**
 * `npm run soak`: the whole stack (accounts, relay, mailer as real processes, a Kafka broker of its
 * own unless SOAK_KAFKA_BROKERS, the SMTP test server) under a steady open-loop load for SOAK_MINUTES
 * (10), at SOAK_RATE registrations/s or, by default, half the capacity measured first (a 10 s closed
 * loop). Every SOAK_STALL_EVERY_MIN minutes (3) SMTP stalls for SOAK_STALL_S seconds (30). Prints per
 * minute: registrations, register p99, mails accepted, consumer lag, outbox/mailer table sizes, RSS
 * per process (the minute's median of once-a-second readings); ends with lost mails, RSS growth after
 * the warm-up per process (from a trend through the minutes after it, `robustTrend`), table bounds, and
 * exits non-zero on a lost mail or RSS growth over 10 %.
 * Warm-up: until the end of the first minute that began after the first stall healed (minute 3 by
 * default) — by then every path (stall, breaker, deferral, the burst of mail and statuses after the
 * heal) has run once; minute 1's figure is printed beside it.
 */
const MINUTES = Number(process.env.SOAK_MINUTES ?? 10);
const STALL_EVERY_MIN = Number(process.env.SOAK_STALL_EVERY_MIN ?? 3);
const STALL_S = Number(process.env.SOAK_STALL_S ?? 30);
/** The first stall starts after the warm-up minute, at 90 s; RSS is judged over the minutes from the first one after it healed. */
const FIRST_STALL_AT_S = 90;
const ADMIN_URL = process.env.SOAK_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const RSS_GROWTH_LIMIT = 0.1;
const DRAIN_TIMEOUT_MS = 300_000;
const PROCESSES = ['accounts', 'relay', 'mailer', 'kafka', 'postgres'] as const;
/** Node processes: their RSS is judged without V8's young generation (youngGenerationMiB says why). */
const NODE_SERVICES: readonly string[] = ['accounts', 'relay', 'mailer'];

const log = (line: string) => process.stdout.write(`${line}\n`);

type Minute = {
  minute: number;
  registered: number;
  errors: number;
  p99_ms: number;
  mails_accepted: number;
  lag_mail_requests: number;
  lag_delivery_status: number;
  outbox: number;
  mailer_requests: number;
  mailer_unfinished: number;
  mailer_outbox: number;
  smtp: string;
  cpu_ms_per_reg: number;
  rss_mb: Record<string, number>;
  /** Each Node service's V8 young generation, the minute's median of once-a-second readings of its /metrics. */
  young_mb: Record<string, number>;
};

/** One instance's young generation in MiB, undefined when its /metrics did not answer with it. */
const youngOf = (opsUrl: string): Promise<number | undefined> =>
  fetch(`${opsUrl}/metrics`, { signal: AbortSignal.timeout(900) })
    .then(async (res) => youngGenerationMiB(await res.text()))
    .catch(() => undefined);

/**
 * Once a second, each service's V8 young generation from its instances' /metrics, summed per service as
 * its RSS is (a reading is kept only when every instance answered); `minute()` takes the medians.
 */
function youngGenerationSampler(system: System) {
  const readings = new Map<string, number[]>();
  const timer = setInterval(() => {
    for (const name of NODE_SERVICES) {
      const instances = system.instances.filter((i) => i.name === name);
      void Promise.all(instances.map((i) => youngOf(i.opsUrl))).then((mib) => {
        if (mib.length === 0 || mib.some((v) => v === undefined)) return;
        const list = readings.get(name) ?? [];
        list.push(mib.reduce((sum: number, v) => sum + (v ?? 0), 0));
        readings.set(name, list);
      });
    }
  }, 1_000);
  timer.unref();
  return {
    minute: (): Record<string, number> => {
      const medians = Object.fromEntries([...readings].map(([name, mib]) => [name, round(median(mib), 0)]));
      readings.clear();
      return medians;
    },
    stop: () => clearInterval(timer),
  };
}

async function createDatabase(): Promise<{ url: string; drop: () => Promise<void> }> {
  const name = `rp_soak_${Date.now().toString(36)}`;
  const admin = async (sql: string) => {
    const c = new pg.Client({ connectionString: ADMIN_URL });
    await c.connect();
    await c.query(sql).finally(() => c.end());
  };
  await admin(`CREATE DATABASE ${name}`);
  const u = new URL(ADMIN_URL);
  u.pathname = `/${name}`;
  await migrate({ databaseUrl: u.toString() });
  return { url: u.toString(), drop: () => admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`) };
}

/** Committed offsets of `groupId` behind the topic's end, summed over partitions. */
async function consumerLag(admin: Admin, groupId: string, topic: string): Promise<number> {
  const ends = await admin.fetchTopicOffsets(topic);
  const [committed] = await admin.fetchOffsets({ groupId, topics: [topic] });
  const at = new Map((committed?.partitions ?? []).map((p) => [p.partition, Number(p.offset)]));
  return ends.reduce((sum, p) => sum + Math.max(0, Number(p.high) - Math.max(0, at.get(p.partition) ?? 0)), 0);
}

async function tableSizes(db: pg.Client) {
  const { rows } = await db.query<{
    outbox: number;
    mailer_requests: number;
    mailer_unfinished: number;
    mailer_outbox: number;
    unsent: number;
  }>(
    `SELECT (SELECT count(*) FROM outbox)::int AS outbox,
            (SELECT count(*) FROM mailer_requests)::int AS mailer_requests,
            (SELECT count(*) FROM mailer_requests WHERE state IN ('pending', 'sending'))::int AS mailer_unfinished,
            (SELECT count(*) FROM mailer_outbox)::int AS mailer_outbox,
            (SELECT count(*) FROM mail_delivery_status WHERE status <> 'sent')::int AS unsent`,
  );
  return rows[0] as NonNullable<(typeof rows)[0]>;
}

function components(system: System, databaseUrl: string) {
  const of = (name: ServiceName): PidSource =>
    treesOf(() => system.instances.filter((i) => i.name === name).map((i) => i.proc?.pid));
  const postgres = postgresBackends(ADMIN_URL, [databaseOf(databaseUrl)]);
  const sources: Record<string, PidSource> = {
    accounts: of('accounts'),
    relay: of('relay'),
    mailer: of('mailer'),
    kafka: treesOf(() => [system.brokerPid()]),
    postgres,
  };
  return { sources, close: postgres.close };
}

async function main(): Promise<void> {
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130));
  const db = await createDatabase();
  const prefix = `soak-${randomBytes(3).toString('hex')}.`;
  const topics = topicNames(prefix);
  log(`[soak] starting the stack (database ${databaseOf(db.url)}, topic prefix ${prefix})...`);
  const system = await startSystem({
    databaseUrl: db.url,
    topicPrefix: prefix,
    counts: { accounts: 1, relay: 1, mailer: 1 },
    ...(process.env.SOAK_KAFKA_BROKERS ? { brokers: process.env.SOAK_KAFKA_BROKERS } : {}),
    env: {
      LOG_LEVEL: 'warn',
      SMTP_TIMEOUT_MS: '2000',
      BREAKER_RESET_TIMEOUT_MS: '5000',
      MAIL_RETRY_BASE_MS: '1000',
      MAIL_RETRY_MAX_MS: '10000',
    },
  });
  const { sources, close } = components(system, db.url);
  const client = new pg.Client({ connectionString: db.url });
  await client.connect();
  const kafka = new Kafka({ brokers: system.brokers.split(','), clientId: 'soak', logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  const api = `${system.accountsUrls()[0] ?? ''}/api/v1/usr/register`;
  const tag = randomBytes(3).toString('hex');
  const registered = new Set<string>();
  const register = async (email: string) => {
    const status = await postJson(
      agent,
      api,
      JSON.stringify({ email, password: 'correct horse battery staple', first_name: 'Soak' }),
    );
    if (status === 201) registered.add(email);
    return status === 201;
  };
  let exitCode = 0;
  try {
    await closedLoop({ concurrency: 4, durationMs: 3_000, request: (i) => register(`warm.${tag}.${i}@example.test`) });
    let rate = Number(process.env.SOAK_RATE ?? 0);
    if (!rate) {
      const capacity = await closedLoop({
        concurrency: 16,
        durationMs: 10_000,
        request: (i) => register(`capacity.${tag}.${i}@example.test`),
      });
      rate = Math.max(1, round(capacity.per_s / 2, 1));
      log(
        `[soak] measured capacity ${capacity.per_s} registrations/s (closed loop x16, mail delivered meanwhile): soak at ${rate}/s`,
      );
    }
    await waitDrained(client, 'capacity probe');
    log(`[soak] ${MINUTES} min at ${rate} registrations/s; SMTP stalls ${STALL_S} s every ${STALL_EVERY_MIN} min`);
    const minutes = await runLoad(system, client, admin, sources, rate, tag, register, prefix, topics);
    log('[soak] load done; waiting for every mail to be delivered...');
    await waitDrained(client, 'final drain');
    const flagged = await client.query<{ recipient: string }>(
      'SELECT recipient FROM mailer_requests WHERE possible_duplicate',
    );
    exitCode = report(minutes, registered, system, new Set(flagged.rows.map((r) => r.recipient)));
  } finally {
    agent.destroy();
    await admin.disconnect().catch(() => undefined);
    await client.end().catch(() => undefined);
    await close();
    await system.stop();
    await db.drop().catch(() => undefined);
  }
  process.exit(exitCode);
}

async function runLoad(
  system: System,
  db: pg.Client,
  admin: Admin,
  sources: Record<string, PidSource>,
  rate: number,
  tag: string,
  register: (email: string) => Promise<boolean>,
  prefix: string,
  topics: ReturnType<typeof topicNames>,
): Promise<Minute[]> {
  const minutes: Minute[] = [];
  const started = performance.now();
  const totalMs = MINUTES * 60_000;
  let i = 0;
  let inFlight: Promise<void>[] = [];
  let latencies: number[] = [];
  let ok = 0;
  let errors = 0;
  let mailsBefore = system.smtp.messages.length;
  let stallUntil = 0;
  let nextStallAt = started + FIRST_STALL_AT_S * 1000;
  const sampler = new CpuSampler(sources, 1_000);
  await sampler.start();
  const young = youngGenerationSampler(system);
  for (let minute = 1; minute <= MINUTES; minute++) {
    const minuteEnd = started + minute * 60_000;
    while (performance.now() < minuteEnd && performance.now() - started < totalMs) {
      const now = performance.now();
      // The first stall at FIRST_STALL_AT_S, then every STALL_EVERY_MIN minutes.
      if (stallUntil === 0 && now >= nextStallAt) {
        stallUntil = now + STALL_S * 1000;
        nextStallAt += STALL_EVERY_MIN * 60_000;
        await system.smtp.setFault({ mode: 'stall-connect' });
        log(`[soak]   SMTP stalling for ${STALL_S} s`);
      } else if (stallUntil > 0 && now >= stallUntil) {
        stallUntil = 0;
        await system.smtp.setFault({ mode: 'healthy' });
        log('[soak]   SMTP healthy again');
      }
      const due = started + (i * 1000) / rate;
      if (due > now) {
        await new Promise((r) => setTimeout(r, Math.min(due - now, 200)));
        continue;
      }
      const t0 = performance.now();
      const email = `soak.${tag}.${i++}@example.test`;
      inFlight.push(
        register(email)
          .then((success) => (success ? ok++ : errors++, latencies.push(performance.now() - t0)))
          .catch(() => void errors++)
          .then(() => undefined),
      );
      if (inFlight.length > 1_000) inFlight = inFlight.slice(-1_000);
    }
    const sizes = await tableSizes(db);
    const usage = await sampler.stop();
    const cpuNow = Object.values(usage.components).reduce((sum, c) => sum + c.cpu_ms, 0);
    await sampler.start().catch(() => undefined);
    const row: Minute = {
      minute,
      registered: ok,
      errors,
      p99_ms: round(percentile(latencies, 99), 1),
      mails_accepted: system.smtp.messages.length - mailsBefore,
      lag_mail_requests: await consumerLag(admin, `${prefix}mailer`, topics.mailRequests).catch(() => -1),
      lag_delivery_status: await consumerLag(
        admin,
        `${prefix}accounts.delivery-status`,
        topics.mailDeliveryStatus,
      ).catch(() => -1),
      outbox: sizes.outbox,
      mailer_requests: sizes.mailer_requests,
      mailer_unfinished: sizes.mailer_unfinished,
      mailer_outbox: sizes.mailer_outbox,
      smtp: system.smtp.fault().mode,
      cpu_ms_per_reg: round(cpuNow / Math.max(1, ok), 1),
      // The minute's median of the sampler's once-a-second RSS readings, not one reading at its end: a
      // process caught between a GC and the heap's regrowth reads 10-20 MiB low for a moment (a soak
      // once failed on such a reading as its reference), and a median ignores it while a leak moves it.
      rss_mb: Object.fromEntries(Object.entries(usage.components).map(([k, v]) => [k, round(v.rss_mb, 0)])),
      young_mb: young.minute(),
    };
    minutes.push(row);
    log(
      `[soak] min ${String(minute).padStart(2)}: registered ${row.registered}, errors ${row.errors}, p99 ${row.p99_ms} ms, mails accepted ${row.mails_accepted}, ` +
        `lag requests/status ${row.lag_mail_requests}/${row.lag_delivery_status}, outbox ${row.outbox}, mailer_requests ${row.mailer_requests} ` +
        `(unfinished ${row.mailer_unfinished}), mailer_outbox ${row.mailer_outbox}, CPU ${row.cpu_ms_per_reg} ms/reg, ` +
        `RSS MiB ${PROCESSES.map((p) => `${p} ${row.rss_mb[p] ?? '-'}`).join(', ')}, ` +
        `of which V8 young generation ${NODE_SERVICES.map((p) => `${p} ${row.young_mb[p] ?? '-'}`).join(', ')}` +
        `${row.smtp !== 'healthy' ? ` [SMTP ${row.smtp}]` : ''}`,
    );
    latencies = [];
    ok = 0;
    errors = 0;
    mailsBefore = system.smtp.messages.length;
  }
  await sampler.stop();
  young.stop();
  await system.smtp.setFault({ mode: 'healthy' });
  await Promise.all(inFlight);
  return minutes;
}

async function waitDrained(db: pg.Client, what: string): Promise<void> {
  const deadline = Date.now() + DRAIN_TIMEOUT_MS;
  for (;;) {
    const s = await tableSizes(db);
    if (s.outbox === 0 && s.mailer_unfinished === 0 && s.mailer_outbox === 0 && s.unsent === 0) return;
    if (Date.now() > deadline) {
      log(`[soak] ${what}: not drained after ${DRAIN_TIMEOUT_MS / 1000} s: ${JSON.stringify(s)}`);
      return;
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** Logs one process's RSS growth over the judged minutes; returns whether it is over the limit. */
function judgeRss(p: string, judged: Minute[], first: Minute | undefined): boolean {
  const rss = judged.map((m) => m.rss_mb[p] ?? 0);
  if (rss.some((v) => v <= 0)) return false;
  const trend = robustTrend(rss);
  const shown = `${round(trend.from, 1)} -> ${round(trend.to, 1)} MiB (${round(trend.growth * 100, 1)} %)`;
  const minutes = `minutes: ${rss.join(', ')} MiB (minute 1: ${first?.rss_mb[p] ?? 0} MiB)`;
  const young = judged.map((m) => m.young_mb[p]);
  if (!NODE_SERVICES.includes(p) || young.some((v) => v === undefined)) {
    // Kafka's JVM is judged on its RSS; PostgreSQL's backends are shown, not judged (shared buffers).
    const over = p !== 'postgres' && trend.growth > RSS_GROWTH_LIMIT;
    log(`[soak] RSS ${p}: ${shown}${over ? ', OVER the 10 % limit' : ''}; ${minutes}`);
    return over;
  }
  const rest = robustTrend(rss.map((r, i) => r - (young[i] ?? 0)));
  const over = rest.growth > RSS_GROWTH_LIMIT;
  log(
    `[soak] RSS ${p}: ${shown}; without the young generation ${round(rest.from, 1)} -> ${round(rest.to, 1)} MiB ` +
      `(${round(rest.growth * 100, 1)} %${over ? ', OVER the 10 % limit' : ''}); ${minutes}, ` +
      `young generation ${young.join(', ')} MiB`,
  );
  return over;
}

/** Final figures; returns the exit code (1 on a lost mail or RSS growth over the limit). */
function report(minutes: Minute[], registered: Set<string>, system: System, flagged: Set<string>): number {
  const delivered = new Map<string, number>();
  for (const m of system.smtp.messages) for (const to of m.to) delivered.set(to, (delivered.get(to) ?? 0) + 1);
  const lost = [...registered].filter((e) => !delivered.has(e)).length;
  const duplicatedTo = [...registered].filter((e) => (delivered.get(e) ?? 0) > 1);
  const duplicated = duplicatedTo.length;
  const unflagged = duplicatedTo.filter((e) => !flagged.has(e)).length;
  // The end of the first minute that began after the first stall healed.
  const warmMinute = Math.ceil((FIRST_STALL_AT_S + STALL_S) / 60) + 1;
  const judged = minutes.length > warmMinute ? minutes.slice(warmMinute - 1) : minutes;
  const judgedLabel = minutes.length > warmMinute ? `minutes ${warmMinute}-${minutes.length}` : 'every minute';
  log('');
  log(
    `[soak] registrations 201: ${registered.size}; mails lost: ${lost}; duplicated: ${duplicated} ` +
      `(not flagged as a possible duplicate by the mailer: ${unflagged})`,
  );
  let failed = lost > 0;
  if (judged.length > 1) {
    log(
      `[soak] RSS growth over ${judgedLabel} (after the warm-up), from a trend through them (the median of ` +
        'the slopes between every two minutes), so one minute read right after a collection decides nothing; ' +
        "a Node service's is judged without V8's young generation, which V8 sizes on its own (4-32 MiB) and " +
        'where no leak stays:',
    );
    for (const p of PROCESSES) failed = judgeRss(p, judged, minutes[0]) || failed;
  }
  const max = (k: 'outbox' | 'mailer_outbox' | 'mailer_unfinished') => Math.max(...minutes.map((m) => m[k]));
  log(
    `[soak] tables: outbox max ${max('outbox')} (0 at the end), mailer_outbox max ${max('mailer_outbox')}, unfinished mail requests max ${max('mailer_unfinished')}`,
  );
  log(
    `[soak] mailer_requests ${minutes.at(-1)?.mailer_requests ?? 0} rows: finished requests stay MAIL_RETENTION_DAYS (7 d) by design, then the retention job deletes them in batches`,
  );
  log(
    `[soak] verdict: ${failed ? 'FAILED' : 'passed'} (0 lost, RSS growth <= 10 % per service process, ` +
      "a Node service's without V8's young generation)",
  );
  return failed ? 1 : 0;
}

main().catch((err: unknown) => {
  console.error(`[soak] failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  process.exit(1);
});
