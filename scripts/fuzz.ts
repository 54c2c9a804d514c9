import { randomUUID } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import type { Producer } from 'kafkajs';
import { buildEnvelope, EVENT_TYPE, envelopeHeaders } from '../shared/src/events';
import { createKafka } from '../shared/src/kafka';
import { topicNames } from '../shared/src/topics';
import globalSetup from '../test/support/global-setup';
import globalTeardown from '../test/support/global-teardown';
import { createTestDatabase, testBrokers, testKafka, uniquePrefix } from '../test/support/infra';
import { sealTestCode } from '../test/support/payload-key';
import { waitFor } from '../test/support/wait-for';
import {
  BEARER_POSTS,
  bearerPostProperty,
  createHttpFuzz,
  getProperty,
  poisonValues,
  PUBLIC_POSTS,
  publicPostProperty,
  unknownRouteProperty,
} from '../test/support/fuzz';
import { createDeliveryStatusConsumer } from '../services/accounts/src/entry-points/kafka/delivery-status-consumer';
import { startTestAccounts, strongPassword, uniqueEmail } from '../services/accounts/test/support/accounts-app';
import { mailRequest, startMailerHarness } from '../services/mailer/test/support/mailer-harness';

/**
 * `npm run fuzz` (outside CI): the security fuzzing of test/security at volume, with the same
 * generators (test/support/fuzz.ts) —
 *  - HTTP: FUZZ_HTTP_RUNS (1,200) generated requests per endpoint group, nine groups (register, login,
 *    token/refresh, anonymous resend, confirm, resend with a token, email/status + openapi.json twice,
 *    unknown routes): 10,800 requests by default, each checked for a 5xx, the error shape and rows
 *    written by a rejected request;
 *  - consumers: FUZZ_EVENTS (1,000) generated poison events spread over every partition of
 *    mail.delivery-status (accounts) and of mail.requests (mailer), then one valid event per partition;
 *    a partition whose valid event is not processed within FUZZ_STALL_MS (60 s) is stalled.
 * Infrastructure as `npm test` provides it (TEST_DATABASE_URL / TEST_KAFKA_BROKERS honoured). Prints the
 * figures, writes test-results/fuzz.json, exits 1 on any 5xx, written row, bad error body or stall.
 * FUZZ_SEED replays a run.
 */
const HTTP_RUNS = Number(process.env.FUZZ_HTTP_RUNS ?? 1_200);
const EVENTS = Number(process.env.FUZZ_EVENTS ?? 1_000);
const STALL_MS = Number(process.env.FUZZ_STALL_MS ?? 60_000);
const SEED = Number(process.env.FUZZ_SEED ?? Date.now() % 2 ** 31);
const RESULTS_FILE = path.join(__dirname, '..', 'test-results', 'fuzz.json');
const log = (line: string) => process.stdout.write(`[fuzz] ${line}\n`);

async function fuzzHttp() {
  const db = await createTestDatabase();
  const accounts = startTestAccounts({ databaseUrl: db.url });
  try {
    const fuzz = createHttpFuzz({ accounts, pool: db.pool, throwOnViolation: false });
    const reg = await accounts.http
      .post('/api/v1/usr/register')
      .send({ email: uniqueEmail('fuzz'), password: strongPassword });
    const tokens = { access: reg.body.access_token as string, refresh: reg.body.refresh_token as string };
    // Without throwOnViolation a property never fails: fast-check runs every generated request.
    const run =
      <T extends unknown[]>(property: fc.IAsyncProperty<T>, runs: number) =>
      () =>
        fc.assert(property, { numRuns: runs, seed: SEED });
    const properties = [
      ...PUBLIC_POSTS.map(([endpoint, url]) => ({
        name: endpoint,
        go: run(publicPostProperty(fuzz, endpoint, url), HTTP_RUNS),
        runs: HTTP_RUNS,
      })),
      ...BEARER_POSTS.map(([endpoint, url]) => ({
        name: endpoint,
        go: run(
          bearerPostProperty(fuzz, endpoint, url, () => tokens),
          HTTP_RUNS,
        ),
        runs: HTTP_RUNS,
      })),
      {
        name: 'email/status + openapi.json',
        go: run(
          getProperty(fuzz, accounts, () => tokens),
          HTTP_RUNS * 2,
        ),
        runs: HTTP_RUNS * 2,
      },
      { name: 'unknown routes', go: run(unknownRouteProperty(fuzz, accounts), HTTP_RUNS), runs: HTTP_RUNS },
    ];
    const started = Date.now();
    for (const { name, go, runs } of properties) {
      await go();
      log(`  ${name}: ${runs} requests (${Math.round((Date.now() - started) / 1000)} s so far)`);
    }
    const alive = (await accounts.http.get('/healthz')).status === 200;
    return { ...fuzz.figures, stillServing: alive, violations: fuzz.violations };
  } finally {
    await accounts.close();
    await db.drop();
  }
}

/** Sends values to explicit partitions (round robin), the 900 KB one on its own. */
async function produceSpread(
  producer: Producer,
  topic: string,
  values: (string | Buffer | null)[],
  partitions: number,
): Promise<void> {
  const messages = values.map((value, i) => ({ key: `fuzz-${i}`, value, partition: i % partitions }));
  for (let i = 0; i < messages.length; i += 50) {
    const chunk = messages.slice(i, i + 50);
    const big = chunk.filter((m) => m.value !== null && m.value.length > 100_000);
    const small = chunk.filter((m) => !big.includes(m));
    if (small.length) await producer.send({ topic, messages: small });
    for (const m of big) await producer.send({ topic, messages: [m] });
  }
}

async function partitionsOf(topic: string): Promise<number> {
  const admin = testKafka('fuzz-admin').admin();
  await admin.connect();
  try {
    const meta = await admin.fetchTopicMetadata({ topics: [topic] });
    return meta.topics[0]?.partitions.length ?? 1;
  } finally {
    await admin.disconnect();
  }
}

async function fuzzAccountsConsumer() {
  const db = await createTestDatabase();
  const prefix = uniquePrefix('fuzz-ds');
  const topic = topicNames(prefix).mailDeliveryStatus;
  const accounts = startTestAccounts({
    databaseUrl: db.url,
    env: { KAFKA_BROKERS: testBrokers().join(','), KAFKA_TOPIC_PREFIX: prefix },
  });
  const kafka = createKafka({ brokers: testBrokers(), clientId: 'fuzz-accounts', logger: accounts.deps.logger });
  const consumer = createDeliveryStatusConsumer({ ...accounts.deps, kafka, admin: kafka.admin(), topicPrefix: prefix });
  const producer = testKafka('fuzz-ds-producer').producer();
  try {
    await consumer.start();
    await producer.connect();
    await waitFor(() => consumer.isRunning(), { timeoutMs: 30_000, message: 'delivery-status consumer did not start' });
    const partitions = await partitionsOf(topic);
    const statusOf = (userId: string, requestId: string) =>
      buildEnvelope({
        id: randomUUID(),
        type: EVENT_TYPE.mailDeliveryStatus,
        aggregateType: 'user',
        aggregateId: userId,
        payload: { request_id: requestId, user_id: userId, status: 'sent', attempt: 1, error_class: null },
      });
    const template = statusOf(randomUUID(), randomUUID());
    const poison = poisonValues(
      template as unknown as Record<string, unknown>,
      {
        envelope: ['id', 'type', 'version', 'occurred_at', 'payload'],
        payload: ['request_id', 'user_id', 'status', 'attempt', 'error_class'],
      },
      SEED,
      EVENTS - 4,
    );
    await produceSpread(producer, topic, poison, partitions);
    // One valid status per partition, after the poison: a partition is stalled if its status is not applied.
    const sentinels: string[] = [];
    for (let p = 0; p < partitions; p++) {
      const reg = await accounts.http
        .post('/api/v1/usr/register')
        .send({ email: uniqueEmail('fuzz-ds'), password: strongPassword });
      const valid = statusOf(reg.body.user_data.id, reg.body.email_confirmation.request_id);
      sentinels.push(reg.body.email_confirmation.request_id);
      await producer.send({
        topic,
        messages: [
          { key: reg.body.user_data.id, value: JSON.stringify(valid), headers: envelopeHeaders(valid), partition: p },
        ],
      });
    }
    const applied = async () =>
      (
        await db.pool.query(
          `SELECT count(*)::int AS n FROM mail_delivery_status WHERE request_id = ANY($1) AND status = 'sent'`,
          [sentinels],
        )
      ).rows[0].n as number;
    await waitFor(async () => (await applied()) === partitions, { timeoutMs: STALL_MS }).catch(() => undefined);
    const parked = (
      await db.pool.query(`SELECT count(*)::int AS n FROM accounts_poison_events WHERE topic = $1`, [topic])
    ).rows[0].n as number;
    return { events: poison.length, partitions, parked, stalledPartitions: partitions - (await applied()) };
  } finally {
    await producer.disconnect();
    await consumer.stop();
    await accounts.close();
    await db.drop();
  }
}

async function fuzzMailerConsumer() {
  const h = await startMailerHarness();
  const producer = testKafka('fuzz-mailer-producer').producer();
  try {
    await h.startInProcess();
    await producer.connect();
    const partitions = await partitionsOf(h.topics.mailRequests);
    const plain = mailRequest();
    const template = buildEnvelope({
      type: EVENT_TYPE.mailRequested,
      aggregateType: 'user',
      aggregateId: plain.user_id,
      payload: { ...plain, vars: { ...plain.vars, code: sealTestCode(plain.vars.code, plain.request_id) } },
    });
    const poison = poisonValues(
      template as unknown as Record<string, unknown>,
      {
        envelope: ['id', 'type', 'version', 'occurred_at', 'payload'],
        payload: ['request_id', 'user_id', 'to', 'template', 'vars'],
      },
      SEED,
      EVENTS - 4,
    );
    await produceSpread(producer, h.topics.mailRequests, poison, partitions);
    const sentinels = Array.from({ length: partitions }, () => mailRequest());
    for (const [p, r] of sentinels.entries()) {
      const valid = buildEnvelope({
        type: EVENT_TYPE.mailRequested,
        aggregateType: 'user',
        aggregateId: r.user_id,
        payload: { ...r, vars: { ...r.vars, code: sealTestCode(r.vars.code, r.request_id) } },
      });
      await producer.send({
        topic: h.topics.mailRequests,
        messages: [{ key: r.user_id, value: JSON.stringify(valid), headers: envelopeHeaders(valid), partition: p }],
      });
    }
    const sent = () => sentinels.filter((r) => h.statusesOf(r.request_id).some((s) => s.status === 'sent')).length;
    await waitFor(() => sent() === partitions, { timeoutMs: STALL_MS }).catch(() => undefined);
    const deadLettered = h.dlqRecords().filter((r) => r.reason === 'invalid_request').length;
    return { events: poison.length, partitions, deadLettered, stalledPartitions: partitions - sent() };
  } finally {
    await producer.disconnect();
    await h.stop();
  }
}

async function main(): Promise<void> {
  log(`seed ${SEED} (replay with FUZZ_SEED=${SEED}); ${HTTP_RUNS * 9} HTTP requests, ${EVENTS} events per consumer`);
  await globalSetup();
  let failed = true;
  try {
    const http = await fuzzHttp();
    log(
      `HTTP: ${http.requests} requests over ${Object.keys(http.byEndpoint).length} endpoints; responses >= 500: ${http.atLeast500}; rejected requests that wrote rows: ${http.rejectedThatChangedRows}; bad error bodies: ${http.badErrorShape}; still serving: ${http.stillServing}`,
    );
    log(`  statuses ${JSON.stringify(http.byStatus)}`);
    for (const v of http.violations.slice(0, 10)) log(`  violation: ${v}`);
    const accounts = await fuzzAccountsConsumer();
    log(
      `accounts consumer (mail.delivery-status): ${accounts.events} generated events over ${accounts.partitions} partitions; parked ${accounts.parked}; stalled partitions: ${accounts.stalledPartitions}`,
    );
    const mailer = await fuzzMailerConsumer();
    log(
      `mailer consumer (mail.requests): ${mailer.events} generated events over ${mailer.partitions} partitions; dead-lettered ${mailer.deadLettered}; stalled partitions: ${mailer.stalledPartitions}`,
    );
    mkdirSync(path.dirname(RESULTS_FILE), { recursive: true });
    writeFileSync(
      RESULTS_FILE,
      `${JSON.stringify({ seed: SEED, at: new Date().toISOString(), http, consumers: { accounts, mailer } }, null, 2)}\n`,
    );
    log(`figures in ${path.relative(process.cwd(), RESULTS_FILE)}`);
    failed =
      http.atLeast500 +
        http.rejectedThatChangedRows +
        http.badErrorShape +
        accounts.stalledPartitions +
        mailer.stalledPartitions >
        0 ||
      !http.stillServing ||
      accounts.parked !== accounts.events ||
      mailer.deadLettered !== mailer.events;
  } finally {
    await globalTeardown();
  }
  log(failed ? 'FAILED' : 'ok');
  process.exit(failed ? 1 : 0);
}

void main().catch((err: unknown) => {
  process.stderr.write(`[fuzz] ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
