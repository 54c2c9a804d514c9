import { randomBytes } from 'node:crypto';
import { appendFileSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Kafka, logLevel } from 'kafkajs';
import pg from 'pg';
import type { ServiceName } from '../infra/dev/service-process';
import { migrate } from './migrate';
import { startSystem, type System } from '../test/support/system';

/**
 * `npm run chaos`: N registrations through the API while a seeded scheduler SIGKILLs and restarts
 * relay, mailer and accounts instances, stops and restarts the Kafka broker, and switches the SMTP
 * server between healthy, stalling and refusing. Then it waits for quiescence and checks every
 * registration against the SMTP server's record. CHAOS_SEED replays a run.
 *
 *   CHAOS_REGISTRATIONS (2000)  CHAOS_SEED (random)  CHAOS_CONCURRENCY (8)  CHAOS_ROUNDS (2: each
 *   kind of fault twice)  CHAOS_FAULT_EVERY_MS (3000)  CHAOS_QUIESCE_TIMEOUT_S (300)
 *   CHAOS_DATABASE_URL (the local server)
 */
const N = Number(process.env.CHAOS_REGISTRATIONS ?? 2000);
const SEED = Number(process.env.CHAOS_SEED ?? randomBytes(4).readUInt32BE(0));
const CONCURRENCY = Number(process.env.CHAOS_CONCURRENCY ?? 8);
const FAULT_EVERY_MS = Number(process.env.CHAOS_FAULT_EVERY_MS ?? 3000);
const ROUNDS = Number(process.env.CHAOS_ROUNDS ?? 2);
const QUIESCE_TIMEOUT_S = Number(process.env.CHAOS_QUIESCE_TIMEOUT_S ?? 300);
const ADMIN_URL = process.env.CHAOS_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

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

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (line: string) => process.stderr.write(`[chaos ${new Date().toISOString().slice(11, 19)}] ${line}\n`);

type Injection = { at_s: number; fault: string; duration_ms: number };

async function main(): Promise<void> {
  // Ctrl-C: exit through process.exit so the 'exit' hooks stop every process and broker started.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130));
  const random = prng(SEED);
  log(`seed ${SEED} (replay with CHAOS_SEED=${SEED}), ${N} registrations, concurrency ${CONCURRENCY}`);
  const dbName = `rp_chaos_${Date.now().toString(36)}`;
  const admin = new pg.Client({ connectionString: ADMIN_URL });
  await admin.connect();
  // The mailer runs on a database of its own, as in production: accounts' and the mailer's.
  const mailerDbName = `${dbName}_mailer`;
  await admin.query(`CREATE DATABASE ${dbName}`);
  await admin.query(`CREATE DATABASE ${mailerDbName}`);
  const urlOf = (name: string) => {
    const url = new URL(ADMIN_URL);
    url.pathname = `/${name}`;
    return url.toString();
  };
  const databaseUrl = urlOf(dbName);
  const mailerDatabaseUrl = urlOf(mailerDbName);
  await migrate({ databaseUrl, mailerDatabaseUrl });
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 3 });
  const mailerPool = new pg.Pool({ connectionString: mailerDatabaseUrl, max: 2 });

  let system: System | undefined;
  const started = Date.now();
  const injections: Injection[] = [];
  try {
    log('starting 2 accounts, 2 relays, 2 mailers, a Kafka broker and the SMTP test server...');
    system = await startSystem({
      databaseUrl,
      mailerDatabaseUrl,
      counts: { accounts: 2, relay: 2, mailer: 2 },
      ...(process.env.CHAOS_LOG_FILE ? { onLine: (label: string, line: string) => appendFileSync(process.env.CHAOS_LOG_FILE as string, `${label} ${line}\n`) } : {}),
      env: {
        LOG_LEVEL: process.env.CHAOS_LOG_LEVEL ?? 'warn',
        SMTP_TIMEOUT_MS: '1500',
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

    // ---- the plan: every kind of fault, ROUNDS times each, in a seeded order, one at a time ----
    const kinds = ['kill relay', 'kill mailer', 'kill accounts', 'stop kafka', 'smtp stall', 'smtp refuse'] as const;
    const plan = Array.from({ length: ROUNDS }, () => [...kinds])
      .flat()
      .map((fault) => ({ fault, order: random() }))
      .sort((a, b) => a.order - b.order)
      .map(({ fault }) => ({ fault, gapMs: Math.round(FAULT_EVERY_MS * (0.5 + random())), durationMs: Math.round(1000 + random() * 5000), index: Math.floor(random() * 2) }));
    const windowMs = plan.reduce((sum, p) => sum + p.gapMs + p.durationMs, 0);
    // Registrations are spread over the whole fault window, so every fault meets traffic.
    // Restarts take time of their own (a service or the broker coming back): stretch the traffic to match.
    const pacing = (windowMs * 1.3) / N;
    log(`plan: ${plan.length} faults over ~${Math.round(windowMs / 1000)} s; one registration every ${pacing.toFixed(1)} ms`);

    // ---- the driver: N registrations through the live accounts instances ----
    const expected = new Map<string, 'created' | 'ambiguous'>();
    const outcome = { created: 0, ambiguous: 0, failed: 0, retries: 0 };
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
            signal: AbortSignal.timeout(15_000),
          });
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
        } catch {
          hadError = true;
        }
        outcome.retries += 1;
        await sleep(100 + attempt * 100);
      }
      outcome.failed += 1;
    };
    const driverStart = Date.now();
    const workers = Array.from({ length: CONCURRENCY }, async () => {
      while (next < N) {
        const i = next++;
        const due = driverStart + i * pacing;
        if (due > Date.now()) await sleep(due - Date.now());
        await register(i);
        if ((i + 1) % 200 === 0) log(`registered ${i + 1}/${N}`);
      }
    });

    // ---- the scheduler: one fault at a time, each healed before the next ----
    const scheduler = (async () => {
      for (const step of plan) {
        await sleep(step.gapMs);
        const at = (Date.now() - started) / 1000;
        injections.push({ at_s: Math.round(at), fault: step.fault, duration_ms: step.durationMs });
        log(`inject: ${step.fault}${step.fault.startsWith('kill') ? ` #${step.index}` : ''} for ${step.durationMs} ms`);
        if (step.fault.startsWith('kill')) {
          const name = step.fault.split(' ')[1] as ServiceName;
          await sys.kill(name, step.index);
          await sleep(step.durationMs);
          await sys.restart(name, step.index);
        } else if (step.fault === 'stop kafka') {
          await sys.stopBroker();
          await sleep(step.durationMs);
          await sys.startBroker();
        } else {
          await sys.smtp.setFault({ mode: step.fault === 'smtp stall' ? 'stall-connect' : 'refuse' });
          await sleep(step.durationMs);
          await sys.smtp.setFault({ mode: 'healthy' });
        }
      }
    })();

    await Promise.all(workers);
    await scheduler;
    log(`registrations done: ${outcome.created} created, ${outcome.ambiguous} ambiguous (committed, response lost), ${outcome.failed} never succeeded; waiting for quiescence...`);

    // ---- quiescence: every expected address has mail, the outbox is empty, statuses are final ----
    const deadline = Date.now() + QUIESCE_TIMEOUT_S * 1000;
    const mailCount = () => {
      const counts = new Map<string, number>();
      for (const m of sys.smtp.messages) for (const to of m.to) counts.set(to, (counts.get(to) ?? 0) + 1);
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
      (await mailerPool.query<{ recipient: string }>(`SELECT recipient FROM mailer_requests WHERE possible_duplicate AND state = 'sent'`)).rows.map((r) => r.recipient),
    );
    const unflaggedDuplicates = duplicated.filter((e) => !flagged.has(e));
    const result = {
      seed: SEED,
      registrations: N,
      created_201: outcome.created,
      ambiguous: outcome.ambiguous,
      never_succeeded: outcome.failed,
      client_retries: outcome.retries,
      injections: injections.length,
      mails_received: sys.smtp.messages.length,
      lost: lost.length,
      duplicated: duplicated.length,
      possible_duplicates_flagged_by_mailer: flagged.size,
      duplicates_outside_the_window: unflaggedDuplicates.length,
      mails_to_unknown_addresses: unexpected.length,
      outbox_rows_left: outboxLeft,
      statuses_not_final: notFinal,
      duration_s: Math.round((Date.now() - started) / 1000),
    };
    const faultsByKind = injections.reduce<Record<string, number>>((acc, i) => ({ ...acc, [i.fault]: (acc[i.fault] ?? 0) + 1 }), {});
    console.log('\n| figure | value |\n|---|---|');
    for (const [k, v] of Object.entries(result)) console.log(`| ${k} | ${v} |`);
    console.log(`\ninjected: ${Object.entries(faultsByKind).map(([k, v]) => `${k} ×${v}`).join(', ') || 'nothing'}`);
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
      const kafka = new Kafka({ brokers: [sys.brokers], clientId: 'chaos-audit', logLevel: logLevel.NOTHING });
      const audit = kafka.consumer({ groupId: `chaos-audit-${Date.now()}` });
      await audit.connect();
      await audit.subscribe({ topics: ['mail.requests'], fromBeginning: true });
      await audit.run({
        eachMessage: async ({ partition, message }) => {
          const requestId = (JSON.parse(message.value?.toString() ?? '{}') as { payload?: { request_id?: string } }).payload?.request_id;
          if (requestId && lostIds.has(requestId)) found.set(requestId, `partition ${partition} offset ${message.offset}`);
        },
      });
      await sleep(8000);
      await audit.disconnect();
      console.log(`lost requests found in Kafka: ${JSON.stringify(Object.fromEntries(found))} (of ${lostIds.size})`);
    }
    if (duplicated.length) console.log(`duplicated (first 10): ${duplicated.slice(0, 10).join(', ')}`);

    const dir = path.join(__dirname, '..', 'bench', 'results');
    mkdirSync(dir, { recursive: true });
    const file = path.join(dir, `chaos-${new Date(started).toISOString().replace(/[:]/g, '-').replace(/\..+$/, '')}.json`);
    writeFileSync(file, `${JSON.stringify({ ...result, injections_detail: injections, lost_addresses: lost, duplicated_addresses: duplicated }, null, 2)}\n`);
    log(`results written to ${path.relative(process.cwd(), file)}`);
    process.exitCode = lost.length > 0 || unflaggedDuplicates.length > 0 || outboxLeft !== 0 || notFinal !== 0 || outcome.failed > 0 ? 1 : 0;
  } finally {
    await system?.stop().catch(() => undefined);
    await pool.end();
    await mailerPool.end();
    if (process.env.CHAOS_KEEP_DB === '1') log(`databases kept for inspection: ${dbName}, ${mailerDbName}`);
    else {
      for (const name of [dbName, mailerDbName]) {
        await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => undefined);
      }
    }
    await admin.end();
  }
}

main().catch((err: unknown) => {
  console.error(`[chaos] failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  process.exit(1);
});
