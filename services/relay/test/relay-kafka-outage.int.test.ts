import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startKafkaBroker, type BrokerHandle } from '../../../infra/kafka/broker';
import { collectMessages, createTestDatabase, uniquePrefix, type TestDatabase } from '../../../test/support/infra';
import { freePort } from '../../../test/support/ports';
import { waitFor } from '../../../test/support/wait-for';
import {
  insertOutboxRows,
  metricValue,
  orderingProblems,
  outboxCount,
  startTestRelay,
  type TestOutboxRow,
} from './relay-harness';

// The 30 s outage: OUTAGE_ROWS rows inserted at ~20 rows/s while the broker is down.
// RELAY_TEST_OUTAGE_ROWS=200 gives a quicker ~10 s run.
const OUTAGE_ROWS = Number(process.env.RELAY_TEST_OUTAGE_ROWS ?? 600);

/*
 * Two ways the broker goes: a clean stop (SIGTERM) and a crash (SIGKILL, contract guarantee 7: "a single
 * broker crashed and restarted on its data") — then it comes back on the same data directory. The crash
 * case is shorter (a third of the rows): what it adds is the broker's unclean restart, not the backlog.
 */
const OUTAGES = [
  { kind: 'stops (SIGTERM)', rows: OUTAGE_ROWS, crash: false },
  { kind: 'is killed (SIGKILL)', rows: Math.ceil(OUTAGE_ROWS / 3), crash: true },
];

describe('relay while Kafka is down', () => {
  let db: TestDatabase;
  let dataDir: string;
  let broker: BrokerHandle | undefined;

  beforeEach(async () => {
    db = await createTestDatabase();
    dataDir = mkdtempSync(path.join(tmpdir(), 'relay-outage-kafka-'));
  });
  afterEach(async () => {
    await broker?.stop();
    broker = undefined;
    await db.drop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  // A broker start, a 30 s outage and a restart: about a minute on this machine, more under load.
  test.each(OUTAGES)(
    'when the broker $kind under steady inserts, the relay keeps running, the backlog rises, then drains to 0 ' +
      'in order after the broker returns on its data',
    async ({ rows: outageRows, crash }) => {
      const port = await freePort();
      const controllerPort = await freePort();
      broker = await startKafkaBroker({ port, controllerPort, dataDir, heapMb: 384 });
      const brokers = [broker.brokers];
      const prefix = uniquePrefix('relay-outage');
      const relay = await startTestRelay({
        databaseUrl: db.url,
        pool: db.pool,
        brokers,
        prefix,
        env: { RELAY_RETRY_MAX_MS: '1000' },
      });

      const rows: TestOutboxRow[] = [];
      let inserting = true;
      const inserter = (async () => {
        for (let i = 0; inserting; i++) {
          const row = { key: `user-${i % 10}`, seq: Math.floor(i / 10) };
          await insertOutboxRows(db.pool, [row]);
          rows.push(row);
          await new Promise((r) => setTimeout(r, 50)); // the steady load's pace, not a wait for a condition
        }
      })();
      try {
        await waitFor(
          async () =>
            (await metricValue(relay.registry, 'outbox_published_total', { topic: 'accounts.user-events' })) >= 10,
          {
            message: 'relay publishing before the outage',
          },
        );

        if (crash) await broker.crash();
        else await broker.stop();
        const insertedAtOutage = rows.length;
        await waitFor(() => rows.length >= insertedAtOutage + outageRows, {
          timeoutMs: 120_000,
          message: 'rows inserted during the outage',
        });
        expect(await metricValue(relay.registry, 'outbox_backlog')).toBeGreaterThanOrEqual(outageRows / 2);
        expect(await metricValue(relay.registry, 'outbox_oldest_unpublished_age_seconds')).toBeGreaterThan(0);
        expect(
          await metricValue(relay.registry, 'outbox_publish_errors_total', { topic: 'accounts.user-events' }),
        ).toBeGreaterThan(0);

        if (crash) await broker.restart();
        else broker = await startKafkaBroker({ port, controllerPort, dataDir, heapMb: 384 });
        inserting = false;
        await inserter;

        await waitFor(async () => (await outboxCount(db.pool)) === 0, {
          timeoutMs: 60_000,
          message: 'backlog drained after the broker returned',
        });
        await waitFor(async () => (await metricValue(relay.registry, 'outbox_backlog')) === 0, {
          message: 'outbox_backlog back to 0',
        });
        const collector = await collectMessages([`${prefix}accounts.user-events`], { brokers });
        try {
          const expected = new Map<string, number>();
          for (const r of rows) expected.set(r.key, (expected.get(r.key) ?? 0) + 1);
          await collector.waitForMessages(rows.length, 30_000);
          expect(orderingProblems(collector.messages, expected)).toEqual([]);
        } finally {
          await collector.stop();
        }
      } finally {
        inserting = false;
        await inserter.catch(() => undefined);
        await relay.stop();
      }
    },
    180_000,
  );
});
