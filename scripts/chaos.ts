import { randomBytes } from 'node:crypto';
import { appendFileSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Kafka, logLevel } from 'kafkajs';
import pg from 'pg';
import type { ServiceName } from '../infra/dev/service-process';
import { migrate } from './migrate';
import { startSystem, type System } from '../test/support/system';
import { startSmtpTestServer, type ReceivedMail, type SmtpTestServer } from '../test/support/smtp-test-server';
import { percentile } from '../bench/lib';
import { startPrivatePostgres, type PrivatePostgres } from '../test/support/private-postgres';

/**
 * `npm run chaos`: N registrations through the API while a seeded scheduler injects faults one at a
 * time — SIGKILL and restart of relay, mailer and accounts instances, the Kafka broker stopped (SIGTERM)
 * or crashed (SIGKILL) and restarted on its data, SMTP stalling or refusing (every provider), the primary
 * SMTP provider stalled while the fallback (a second SMTP test server in SMTP_FALLBACK_URLS, label
 * `fallback`) takes the mail. Then it waits for quiescence and checks every registration against both
 * SMTP servers' records, and reports per fault kind the longest pause in mail accepted by SMTP and the
 * register → SMTP accepted latency (p50/p99) of the registrations made while the fault was on.
 * CHAOS_SEED replays a run.
 *
 * Plans (CHAOS_PLAN):
 *   default   every fault kind in PLANS.default; with KAFKA_CLUSTER_SIZE=3 (a 3-node KRaft cluster,
 *             replication 3, min ISR 2) also a SIGKILL of the leader of a mail.requests partition and a
 *             rolling restart of all three nodes.
 *   postgres  the services run on a private PostgreSQL (initdb into a temp dir, any free port) whose
 *             postmaster is SIGKILLed and restarted (crash recovery), beside relay and mailer kills;
 *             accounts must answer 503 during the outage, never another 5xx, never hang.
 * CHAOS_FAULTS=a,b,c replaces the plan's fault kinds (names as in FAULTS below).
 *
 *   CHAOS_REGISTRATIONS (2000)  CHAOS_SEED (random)  CHAOS_CONCURRENCY (8)  CHAOS_ROUNDS (2: each
 *   kind of fault twice)  CHAOS_FAULT_EVERY_MS (3000)  CHAOS_QUIESCE_TIMEOUT_S (300)
 *   CHAOS_DATABASE_URL (the local server; unused by the postgres plan)  KAFKA_CLUSTER_SIZE (1)
 */
const N = Number(process.env.CHAOS_REGISTRATIONS ?? 2000);
const SEED = Number(process.env.CHAOS_SEED ?? randomBytes(4).readUInt32BE(0));
const CONCURRENCY = Number(process.env.CHAOS_CONCURRENCY ?? 8);
const FAULT_EVERY_MS = Number(process.env.CHAOS_FAULT_EVERY_MS ?? 3000);
const ROUNDS = Number(process.env.CHAOS_ROUNDS ?? 2);
const QUIESCE_TIMEOUT_S = Number(process.env.CHAOS_QUIESCE_TIMEOUT_S ?? 300);
const ADMIN_URL = process.env.CHAOS_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const PLAN = process.env.CHAOS_PLAN ?? 'default';
const CLUSTER_SIZE = Number(process.env.KAFKA_CLUSTER_SIZE ?? 1);
/** A client waits this long for an answer; the server's own request timeout is 25 s, so a request still
 * unanswered here hung past it. */
const CLIENT_TIMEOUT_MS = 30_000;
const CONTRACT_TOPICS = ['accounts.user-events', 'mail.requests', 'mail.delivery-status', 'mail.requests.dlq'];

type Step = { fault: string; gapMs: number; durationMs: number; index: number };
type FaultContext = { sys: System; fallback: SmtpTestServer; pg: PrivatePostgres | undefined; random: () => number };
/** Injects one fault, keeps it `step.durationMs`, heals it; returns what exactly it did (for the log). */
type Fault = (ctx: FaultContext, step: Step) => Promise<string>;

/** The shortest primary outage: several SMTP timeouts (1.5 s here), so its breaker opens. */
const PRIMARY_DOWN_MIN_MS = 8_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (line: string) => process.stderr.write(`[chaos ${new Date().toISOString().slice(11, 19)}] ${line}\n`);

/** After a Kafka node comes back: every partition has its replicas in sync again before the next fault. */
const kafkaInSync = (sys: System) => sys.waitKafkaInSync([...CONTRACT_TOPICS, '__consumer_offsets']);

const killService =
  (name: ServiceName): Fault =>
  async ({ sys }, step) => {
    await sys.kill(name, step.index);
    await sleep(step.durationMs);
    await sys.restart(name, step.index);
    return `${name} #${step.index}`;
  };

/** An SMTP outage: every provider (the primary and the fallback) stalls or refuses. */
const smtpFault =
  (mode: 'stall-connect' | 'refuse'): Fault =>
  async ({ sys, fallback }, step) => {
    await Promise.all([sys.smtp.setFault({ mode }), fallback.setFault({ mode })]);
    await sleep(step.durationMs);
    await Promise.all([sys.smtp.setFault({ mode: 'healthy' }), fallback.setFault({ mode: 'healthy' })]);
    return `${mode} (primary and fallback)`;
  };

/** Every kind of fault the scheduler knows. New kinds go here and into a plan. */
const FAULTS: Record<string, Fault> = {
  'kill relay': killService('relay'),
  'kill mailer': killService('mailer'),
  'kill accounts': killService('accounts'),
  'smtp stall': smtpFault('stall-connect'),
  'smtp refuse': smtpFault('refuse'),
  /**
   * The primary stalls (accepts TCP, never greets) while the fallback stays healthy; then it heals. At
   * least PRIMARY_DOWN_MIN_MS, so the primary's breaker opens and the fallback carries the mail a while.
   */
  'primary provider down': async ({ sys }, step) => {
    const ms = Math.max(step.durationMs, PRIMARY_DOWN_MIN_MS);
    await sys.smtp.setFault({ mode: 'stall-connect' });
    await sleep(ms);
    await sys.smtp.setFault({ mode: 'healthy' });
    return `primary stall-connect for ${ms} ms, fallback healthy`;
  },
  /** Every Kafka node SIGTERMed (a clean shutdown), then started again. */
  'stop kafka': async ({ sys }, step) => {
    await sys.stopBroker();
    await sleep(step.durationMs);
    await sys.startBroker();
    await kafkaInSync(sys);
    return `${sys.kafkaNodes().length} node(s)`;
  },
  /** kill -9 of one Kafka node mid-traffic, restarted on the same data directory. */
  'crash kafka': async ({ sys }, step) => {
    const nodes = sys.kafkaNodes();
    const node = nodes[step.index % nodes.length];
    await sys.crashBroker(node);
    await sleep(step.durationMs);
    await sys.restartBroker(node);
    await kafkaInSync(sys);
    return `node ${node?.nodeId ?? '?'}`;
  },
  /** kill -9 of the node leading a mail.requests partition (a cluster). */
  'crash kafka leader': async ({ sys, random }, step) => {
    const partition = Math.floor(random() * 6);
    const leader = await sys.leaderOf('mail.requests', partition);
    await sys.crashBroker(leader);
    await sleep(step.durationMs);
    await sys.restartBroker(leader);
    await kafkaInSync(sys);
    return `node ${leader.nodeId}, leader of mail.requests[${partition}]`;
  },
  /** Each node in turn: SIGTERM, start on its data, wait until in sync; then the next. */
  'rolling restart kafka': async ({ sys }) => {
    for (const node of sys.kafkaNodes()) {
      await node.stop();
      await sys.restartBroker(node);
      await kafkaInSync(sys);
    }
    return `${sys.kafkaNodes().length} nodes one by one`;
  },
  /** kill -9 of the PostgreSQL postmaster, restarted on its data directory (crash recovery). */
  'crash postgres': async ({ pg: server }, step) => {
    if (!server) throw new Error('crash postgres needs CHAOS_PLAN=postgres (a private PostgreSQL)');
    await server.crash();
    await sleep(step.durationMs);
    await server.start();
    return `postmaster on port ${server.port}`;
  },
};

/** About how long healing takes beyond the fault's own duration (a JVM or a server starting), for pacing. */
const HEAL_ESTIMATE_MS: Record<string, number> = {
  'stop kafka': 10_000,
  'crash kafka': 10_000,
  'crash kafka leader': 12_000,
  'rolling restart kafka': 40_000,
  'crash postgres': 2_000,
  'primary provider down': PRIMARY_DOWN_MIN_MS,
};

const BASE_KINDS = [
  'kill relay',
  'kill mailer',
  'kill accounts',
  'stop kafka',
  'crash kafka',
  'smtp stall',
  'smtp refuse',
  'primary provider down',
];
const PLANS: Record<string, string[]> = {
  default: CLUSTER_SIZE >= 3 ? [...BASE_KINDS, 'crash kafka leader', 'rolling restart kafka'] : BASE_KINDS,
  postgres: ['crash postgres', 'kill relay', 'kill mailer'],
};

function planKinds(): string[] {
  const kinds = process.env.CHAOS_FAULTS ? process.env.CHAOS_FAULTS.split(',').map((k) => k.trim()) : PLANS[PLAN];
  if (!kinds) throw new Error(`unknown CHAOS_PLAN ${PLAN} (known: ${Object.keys(PLANS).join(', ')})`);
  const unknown = kinds.filter((k) => !FAULTS[k]);
  if (unknown.length)
    throw new Error(`unknown fault kinds: ${unknown.join(', ')} (known: ${Object.keys(FAULTS).join(', ')})`);
  return kinds;
}

/** mulberry32: a small seeded PRNG, so a seed replays the same schedule of faults. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Injection = {
  at_s: number;
  fault: string;
  duration_ms: number;
  detail: string;
  startMs: number;
  healedMs: number;
};

type Pause = { pause_ms: number; resumed_after_heal_ms: number; injections: number };
type Latency = { mails: number; p50_ms: number; p99_ms: number };

/**
 * Per fault kind: register (users.created_at) → first SMTP acceptance (either provider) of the
 * registrations made between an injection's start and its heal, over every injection of the kind.
 */
function latencyByKind(
  injections: Injection[],
  registeredAt: Map<string, number>,
  acceptedAt: Map<string, number>,
): Record<string, Latency> {
  const samples: Record<string, number[]> = {};
  for (const inj of injections) {
    const list = (samples[inj.fault] ??= []);
    for (const [email, at] of registeredAt) {
      const accepted = acceptedAt.get(email);
      if (at >= inj.startMs && at <= inj.healedMs && accepted !== undefined) list.push(accepted - at);
    }
  }
  return Object.fromEntries(
    Object.entries(samples).map(([kind, v]) => [
      kind,
      { mails: v.length, p50_ms: percentile(v, 50), p99_ms: percentile(v, 99) },
    ]),
  );
}

/**
 * Per fault kind (maximum over its injections): `pause_ms`, the longest time without a mail accepted by
 * SMTP from the injection's start until the next one's (the last one: until the traffic ended; a window
 * without any mail counts as one pause as long as the window, a lower bound); and `resumed_after_heal_ms`,
 * from the heal (the process or broker back and serving) to the first mail accepted after it — the
 * consumers' own recovery, without the time the fault itself lasted.
 */
function pausesByKind(injections: Injection[], acceptedMs: number[], trafficEndMs: number): Record<string, Pause> {
  const sorted = [...acceptedMs].sort((a, b) => a - b);
  const out: Record<string, Pause> = {};
  injections.forEach((inj, i) => {
    const end = Math.max(injections[i + 1]?.startMs ?? trafficEndMs, inj.healedMs);
    let last = inj.startMs;
    let longest = 0;
    for (const t of sorted) {
      if (t <= inj.startMs) continue;
      if (t > end) break;
      longest = Math.max(longest, t - last);
      last = t;
    }
    longest = Math.max(longest, end - last);
    const firstAfterHeal = sorted.find((t) => t >= inj.healedMs);
    const resumed = firstAfterHeal === undefined ? end - inj.healedMs : firstAfterHeal - inj.healedMs;
    const entry = out[inj.fault] ?? { pause_ms: 0, resumed_after_heal_ms: 0, injections: 0 };
    out[inj.fault] = {
      pause_ms: Math.max(entry.pause_ms, longest),
      resumed_after_heal_ms: Math.max(entry.resumed_after_heal_ms, resumed),
      injections: entry.injections + 1,
    };
  });
  return out;
}

async function main(): Promise<void> {
  // Ctrl-C: exit through process.exit so the 'exit' hooks stop every process and broker started.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130));
  const random = prng(SEED);
  const kinds = planKinds();
  log(`seed ${SEED} (replay with CHAOS_SEED=${SEED}), plan ${PLAN}, ${N} registrations, concurrency ${CONCURRENCY}`);
  let privatePg: PrivatePostgres | undefined;
  if (PLAN === 'postgres' || kinds.includes('crash postgres')) {
    log('starting a private PostgreSQL (initdb into a temp dir)...');
    privatePg = await startPrivatePostgres();
    process.on('exit', () => {
      const pid = privatePg?.pid();
      if (pid && privatePg?.running()) process.kill(pid, 'SIGKILL');
    });
  }
  const adminUrl = privatePg ? privatePg.url() : ADMIN_URL;
  const dbName = `rp_chaos_${Date.now().toString(36)}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  // The mailer runs on a database of its own, as in production: accounts' and the mailer's.
  const mailerDbName = `${dbName}_mailer`;
  await admin.query(`CREATE DATABASE ${dbName}`);
  await admin.query(`CREATE DATABASE ${mailerDbName}`);
  const urlOf = (name: string) => {
    const url = new URL(adminUrl);
    url.pathname = `/${name}`;
    return url.toString();
  };
  const databaseUrl = urlOf(dbName);
  const mailerDatabaseUrl = urlOf(mailerDbName);
  await migrate({ databaseUrl, mailerDatabaseUrl });
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 3 });
  const mailerPool = new pg.Pool({ connectionString: mailerDatabaseUrl, max: 2 });
  // The postgres plan crashes the server under these pools too: a dead idle client must not end the run.
  pool.on('error', () => undefined);
  mailerPool.on('error', () => undefined);
  admin.on('error', () => undefined);

  let system: System | undefined;
  // The fallback provider: a second SMTP test server, configured in every mailer's SMTP_FALLBACK_URLS.
  const fallback = await startSmtpTestServer();
  const started = Date.now();
  const injections: Injection[] = [];
  try {
    const kafkaLabel = CLUSTER_SIZE > 1 ? `a ${CLUSTER_SIZE}-node Kafka cluster` : 'a Kafka broker';
    log(`starting 2 accounts, 2 relays, 2 mailers, ${kafkaLabel} and the SMTP test servers (primary, fallback)...`);
    system = await startSystem({
      databaseUrl,
      mailerDatabaseUrl,
      counts: { accounts: 2, relay: 2, mailer: 2 },
      kafkaClusterSize: CLUSTER_SIZE,
      ...(process.env.CHAOS_LOG_FILE
        ? {
            onLine: (label: string, line: string) =>
              appendFileSync(process.env.CHAOS_LOG_FILE as string, `${label} ${line}\n`),
          }
        : {}),
      env: {
        LOG_LEVEL: process.env.CHAOS_LOG_LEVEL ?? 'warn',
        SMTP_TIMEOUT_MS: '1500',
        SMTP_FALLBACK_URLS: `smtp://${fallback.host}:${fallback.port}?name=fallback`,
        MAIL_RETRY_BASE_MS: '500',
        MAIL_RETRY_MAX_MS: '5000',
        MAIL_MAX_ATTEMPTS: '60',
        BREAKER_VOLUME_THRESHOLD: '3',
        BREAKER_RESET_TIMEOUT_MS: '2000',
        RELAY_POLL_INTERVAL_MS: '250',
        RELAY_RETRY_MAX_MS: '2000',
      },
    });
    const sys = system;
    log(`Kafka bootstrap brokers: ${sys.brokers}`);

    // ---- the plan: every kind of fault, ROUNDS times each, in a seeded order, one at a time ----
    const plan: Step[] = Array.from({ length: ROUNDS }, () => [...kinds])
      .flat()
      .map((fault) => ({ fault, order: random() }))
      .sort((a, b) => a.order - b.order)
      .map(({ fault }) => ({
        fault,
        gapMs: Math.round(FAULT_EVERY_MS * (0.5 + random())),
        durationMs: Math.round(1000 + random() * 5000),
        index: Math.floor(random() * 2),
      }));
    const windowMs = plan.reduce((sum, p) => sum + p.gapMs + p.durationMs + (HEAL_ESTIMATE_MS[p.fault] ?? 2_000), 0);
    // Registrations are spread over the whole fault window, so every fault meets traffic.
    // Restarts take time of their own (a service or the broker coming back): stretch the traffic to match.
    const pacing = (windowMs * 1.3) / N;
    log(
      `plan: ${plan.length} faults over ~${Math.round(windowMs / 1000)} s; one registration every ${pacing.toFixed(1)} ms`,
    );

    // ---- the driver: N registrations through the live accounts instances ----
    const expected = new Map<string, 'created' | 'ambiguous'>();
    const outcome = { created: 0, ambiguous: 0, failed: 0, retries: 0, hung: 0 };
    const statuses: Record<string, number> = {};
    let next = 0;
    const register = async (i: number): Promise<void> => {
      const email = `chaos.${SEED}.${i}@example.test`;
      let hadError = false;
      for (let attempt = 0; attempt < 20; attempt++) {
        const urls = sys.accountsUrls();
        const base = urls[(i + attempt) % Math.max(1, urls.length)];
        if (!base) {
          await sleep(200);
          continue;
        }
        try {
          const res = await fetch(`${base}/api/v1/usr/register`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ email, password: `chaos-password-${i}`, first_name: `User${i}` }),
            signal: AbortSignal.timeout(CLIENT_TIMEOUT_MS),
          });
          statuses[res.status] = (statuses[res.status] ?? 0) + 1;
          if (res.status === 201) {
            expected.set(email, hadError ? 'ambiguous' : 'created');
            outcome[hadError ? 'ambiguous' : 'created'] += 1;
            return;
          }
          if (res.status === 409 && hadError) {
            // An earlier attempt committed but its response was lost with the killed instance.
            expected.set(email, 'ambiguous');
            outcome.ambiguous += 1;
            return;
          }
          hadError = true;
        } catch (err) {
          if (err instanceof Error && err.name === 'TimeoutError') outcome.hung += 1;
          hadError = true;
        }
        outcome.retries += 1;
        await sleep(100 + attempt * 100);
      }
      outcome.failed += 1;
    };
    const driverStart = Date.now();
    let trafficEndMs = 0;
    let schedulerDone = false;
    // N registrations at least; if healing takes longer than estimated, traffic goes on at the same pace
    // until the last fault is healed, so every fault meets traffic.
    const workers = Array.from({ length: CONCURRENCY }, async () => {
      while (next < N || !schedulerDone) {
        const i = next++;
        const due = driverStart + i * pacing;
        if (due > Date.now()) await sleep(due - Date.now());
        await register(i);
        if ((i + 1) % 200 === 0) log(`registered ${i + 1}/${N}`);
      }
    });

    // ---- the scheduler: one fault at a time, each healed before the next ----
    const runPlan = async () => {
      for (const step of plan) {
        await sleep(step.gapMs);
        const startMs = Date.now();
        log(`inject: ${step.fault} for ${step.durationMs} ms`);
        const fault = FAULTS[step.fault] as Fault;
        const detail = await fault({ sys, fallback, pg: privatePg, random }, step);
        const healedMs = Date.now();
        log(`healed: ${step.fault} (${detail}) after ${healedMs - startMs} ms`);
        injections.push({
          at_s: Math.round((startMs - started) / 1000),
          fault: step.fault,
          duration_ms: step.durationMs,
          detail,
          startMs,
          healedMs,
        });
      }
      // A few seconds of traffic after the last heal, so its pause is measured against flowing mail.
      await sleep(5_000);
    };
    const scheduler = (async () => {
      try {
        await runPlan();
      } finally {
        schedulerDone = true;
      }
    })();

    await Promise.all(workers);
    trafficEndMs = Date.now();
    await scheduler;
    log(
      `registrations done: ${outcome.created} created, ${outcome.ambiguous} ambiguous (committed, response lost), ${outcome.failed} never succeeded; waiting for quiescence...`,
    );

    // ---- quiescence: every expected address has mail, the outbox is empty, statuses are final ----
    const deadline = Date.now() + QUIESCE_TIMEOUT_S * 1000;
    // Mail accepted by either provider counts: the primary's record and the fallback's.
    const allMail = (): ReceivedMail[] => [...sys.smtp.messages, ...fallback.messages];
    const mailCount = () => {
      const counts = new Map<string, number>();
      for (const m of allMail()) for (const to of m.to) counts.set(to, (counts.get(to) ?? 0) + 1);
      return counts;
    };
    let outboxLeft = -1;
    let notFinal = -1;
    for (;;) {
      const counts = mailCount();
      const missing = [...expected.keys()].filter((e) => !counts.has(e)).length;
      outboxLeft = Number((await pool.query<{ n: string }>('SELECT count(*) AS n FROM outbox')).rows[0]?.n ?? -1);
      notFinal = Number(
        (
          await pool.query<{ n: string }>(
            `SELECT count(*) AS n FROM (
               SELECT DISTINCT ON (c.user_id) s.status FROM email_confirmations c
               LEFT JOIN mail_delivery_status s ON s.request_id = c.request_id
               ORDER BY c.user_id, c.created_at DESC) latest
             WHERE status IS NULL OR status NOT IN ('sent', 'failed')`,
          )
        ).rows[0]?.n ?? -1,
      );
      if ((missing === 0 && outboxLeft === 0 && notFinal === 0) || Date.now() > deadline) break;
      log(`waiting: ${missing} addresses without mail, ${outboxLeft} outbox rows, ${notFinal} statuses not final`);
      await sleep(3000);
    }

    const counts = mailCount();
    const lost = [...expected.keys()].filter((e) => !counts.has(e));
    const duplicated = [...expected.keys()].filter((e) => (counts.get(e) ?? 0) > 1);
    const unexpected = [...counts.keys()].filter((e) => !expected.has(e));
    // A duplicate is allowed only in the documented window, where the mailer flags the request as a
    // possible duplicate (and counts it in mail_duplicate_sends_total): compare with its flags.
    const flagged = new Set(
      (
        await mailerPool.query<{ recipient: string }>(
          `SELECT recipient FROM mailer_requests WHERE possible_duplicate AND state = 'sent'`,
        )
      ).rows.map((r) => r.recipient),
    );
    const unflaggedDuplicates = duplicated.filter((e) => !flagged.has(e));
    const serverErrors = Object.entries(statuses).filter(([code]) => Number(code) >= 500 && code !== '503');
    const pauses = pausesByKind(
      injections,
      allMail().map((m) => m.receivedAt.getTime()),
      trafficEndMs,
    );
    const { rows: users } = await pool.query<{ email: string; created_at: Date }>(
      'SELECT email, created_at FROM users',
    );
    const registeredAt = new Map(users.map((u) => [u.email, u.created_at.getTime()]));
    const acceptedAt = new Map<string, number>();
    for (const m of allMail()) {
      for (const to of m.to) {
        const t = m.receivedAt.getTime();
        if (t < (acceptedAt.get(to) ?? Infinity)) acceptedAt.set(to, t);
      }
    }
    const latencies = latencyByKind(injections, registeredAt, acceptedAt);
    const allLatencies = [...registeredAt].flatMap(([email, at]) => {
      const accepted = acceptedAt.get(email);
      return accepted === undefined ? [] : [accepted - at];
    });
    const result = {
      plan: PLAN,
      kafka_nodes: sys.kafkaNodes().length,
      seed: SEED,
      registrations: next,
      created_201: outcome.created,
      ambiguous: outcome.ambiguous,
      never_succeeded: outcome.failed,
      client_retries: outcome.retries,
      http_statuses: Object.entries(statuses)
        .map(([k, v]) => `${k}×${v}`)
        .join(' '),
      server_errors_other_than_503: serverErrors.reduce((n, [, v]) => n + v, 0),
      requests_unanswered_after_30s: outcome.hung,
      injections: injections.length,
      mails_received: sys.smtp.messages.length + fallback.messages.length,
      mails_via_fallback: fallback.messages.length,
      mail_latency_p50_ms: percentile(allLatencies, 50),
      mail_latency_p99_ms: percentile(allLatencies, 99),
      lost: lost.length,
      duplicated: duplicated.length,
      duplicated_across_providers: duplicated.filter(
        (e) => sys.smtp.messages.some((m) => m.to.includes(e)) && fallback.messages.some((m) => m.to.includes(e)),
      ).length,
      possible_duplicates_flagged_by_mailer: flagged.size,
      duplicates_outside_the_window: unflaggedDuplicates.length,
      mails_to_unknown_addresses: unexpected.length,
      outbox_rows_left: outboxLeft,
      statuses_not_final: notFinal,
      duration_s: Math.round((Date.now() - started) / 1000),
    };
    const faultsByKind = injections.reduce<Record<string, number>>(
      (acc, i) => ({ ...acc, [i.fault]: (acc[i.fault] ?? 0) + 1 }),
      {},
    );
    console.log('\n| figure | value |\n|---|---|');
    for (const [k, v] of Object.entries(result)) console.log(`| ${k} | ${v} |`);
    console.log(
      `\ninjected: ${
        Object.entries(faultsByKind)
          .map(([k, v]) => `${k} ×${v}`)
          .join(', ') || 'nothing'
      }`,
    );
    console.log(
      '\n| fault kind | injections | longest pause in mail accepted (s) | mail resumed after the heal (s) ' +
        '| mail latency p50 / p99 of registrations during the fault (s) |',
    );
    console.log('|---|---|---|---|---|');
    const seconds = (ms: number | undefined) => (ms === undefined || Number.isNaN(ms) ? '–' : (ms / 1000).toFixed(1));
    for (const [kind, p] of Object.entries(pauses)) {
      const l = latencies[kind];
      console.log(
        `| ${kind} | ${p.injections} | ${seconds(p.pause_ms)} | ${seconds(p.resumed_after_heal_ms)} ` +
          `| ${seconds(l?.p50_ms)} / ${seconds(l?.p99_ms)} (${l?.mails ?? 0} mails) |`,
      );
    }
    if (lost.length) {
      console.log(`lost (first 10): ${lost.slice(0, 10).join(', ')}`);
      // Where each lost mail stopped: the accounts side, the outbox, the relay's dead letters, the mailer.
      const { rows: accountsTrail } = await pool.query<{ request_id: string }>(
        `SELECT u.email, c.request_id, c.state AS confirmation, s.status, s.attempt, s.error_class,
                (SELECT count(*) FROM outbox o WHERE o.key = u.id::text) AS outbox_rows,
                (SELECT count(*) FROM outbox_dead_letters d WHERE d.key = u.id::text) AS dead_letters
           FROM users u JOIN email_confirmations c ON c.user_id = u.id
           LEFT JOIN mail_delivery_status s ON s.request_id = c.request_id
          WHERE u.email = ANY($1)`,
        [lost.slice(0, 10)],
      );
      // The mailer's side lives in its own database.
      const { rows: mailerRows } = await mailerPool.query<{ request_id: string }>(
        `SELECT request_id, state AS mailer_state, attempts AS mailer_attempts, last_error_class, next_attempt_at, lease_until
           FROM mailer_requests WHERE request_id = ANY($1::uuid[])`,
        [accountsTrail.map((t) => t.request_id)],
      );
      const trail = accountsTrail.map((t) => ({ ...t, ...mailerRows.find((m) => m.request_id === t.request_id) }));
      console.log(`where they stopped: ${JSON.stringify(trail)}`);
      // Did the lost requests reach Kafka? A fresh consumer group reads mail.requests from the start.
      const lostIds = new Set(trail.map((t: { request_id: string }) => t.request_id));
      const found = new Map<string, string>();
      const kafka = new Kafka({ brokers: sys.brokers.split(','), clientId: 'chaos-audit', logLevel: logLevel.NOTHING });
      const audit = kafka.consumer({ groupId: `chaos-audit-${Date.now()}` });
      await audit.connect();
      await audit.subscribe({ topics: ['mail.requests'], fromBeginning: true });
      await audit.run({
        eachMessage: async ({ partition, message }) => {
          const requestId = (JSON.parse(message.value?.toString() ?? '{}') as { payload?: { request_id?: string } })
            .payload?.request_id;
          if (requestId && lostIds.has(requestId))
            found.set(requestId, `partition ${partition} offset ${message.offset}`);
        },
      });
      await sleep(8000);
      await audit.disconnect();
      console.log(`lost requests found in Kafka: ${JSON.stringify(Object.fromEntries(found))} (of ${lostIds.size})`);
    }
    if (duplicated.length) console.log(`duplicated (first 10): ${duplicated.slice(0, 10).join(', ')}`);

    const dir = path.join(__dirname, '..', 'bench', 'results');
    mkdirSync(dir, { recursive: true });
    const file = path.join(
      dir,
      `chaos-${new Date(started).toISOString().replace(/[:]/g, '-').replace(/\..+$/, '')}.json`,
    );
    const detail = injections.map(({ startMs: _s, healedMs, ...i }) => ({ ...i, healed_after_ms: healedMs - _s }));
    const record = {
      ...result,
      mail_pause_by_fault: pauses,
      mail_latency_by_fault: latencies,
      injections_detail: detail,
      lost_addresses: lost,
      duplicated_addresses: duplicated,
    };
    writeFileSync(file, `${JSON.stringify(record, null, 2)}\n`);
    log(`results written to ${path.relative(process.cwd(), file)}`);
    const failedChecks = [
      lost.length > 0 && 'mail lost',
      unflaggedDuplicates.length > 0 && 'duplicates outside the window',
      outboxLeft !== 0 && 'outbox rows left',
      notFinal !== 0 && 'statuses not final',
      outcome.failed > 0 && 'registrations that never succeeded',
      serverErrors.length > 0 && '5xx other than 503',
      outcome.hung > 0 && 'requests unanswered past the server timeout',
    ].filter(Boolean);
    if (failedChecks.length) log(`FAILED: ${failedChecks.join(', ')}`);
    process.exitCode = failedChecks.length ? 1 : 0;
  } finally {
    await system?.stop().catch(() => undefined);
    await fallback.close().catch(() => undefined);
    await pool.end();
    await mailerPool.end();
    if (process.env.CHAOS_KEEP_DB === '1') log(`databases kept for inspection: ${dbName}, ${mailerDbName}`);
    else {
      for (const name of [dbName, mailerDbName]) {
        await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => undefined);
      }
    }
    await admin.end();
    await privatePg?.destroy();
  }
}

main().catch((err: unknown) => {
  console.error(`[chaos] failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  process.exit(1);
});
