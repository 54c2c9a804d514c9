import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import {
  collectMessages,
  createTestDatabase,
  testBrokers,
  uniquePrefix,
  type TestDatabase,
} from '../../../test/support/infra';
import { labelNameSets, metricSeries } from '../../../test/support/metric-series';
import { freePort } from '../../../test/support/ports';
import { waitFor } from '../../../test/support/wait-for';
import { insertOutboxRows, orderingProblems, outboxCount, startTestRelay, type TestOutboxRow } from './relay-harness';

// The size, 10,000 rows over 500 keys (about 10 s here); RELAY_TEST_SMALL=1 runs a fifth.
const FULL = process.env.RELAY_TEST_SMALL !== '1';
const ROWS = FULL ? 10_000 : 2_000;
const KEYS = FULL ? 500 : 100;
const ROWS_PER_COMMIT = 50;
const ROOT = path.resolve(__dirname, '../../..');

describe('several relay instances', () => {
  let db: TestDatabase;
  let child: ChildProcess | undefined;

  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await db.drop();
  });

  test(`when three relays publish ${ROWS} rows over ${KEYS} keys and one is killed with SIGKILL mid-run, every row reaches Kafka, each key in commit order, and the outbox ends empty`, async () => {
    const prefix = uniquePrefix('relay-multi');
    const port = await freePort();
    let childStderr = '';
    // The victim runs as its own process so that SIGKILL is a real crash: no stop(), no ROLLBACK, its
    // connections simply vanish. `node --import tsx` rather than the tsx CLI, which would run the relay
    // in a grandchild that outlives the SIGKILL.
    child = spawn(process.execPath, ['--import', 'tsx', 'services/relay/src/main.ts'], {
      cwd: ROOT,
      env: {
        PATH: process.env.PATH,
        DATABASE_URL: db.url,
        KAFKA_BROKERS: testBrokers().join(','),
        KAFKA_TOPIC_PREFIX: prefix,
        KAFKA_TOPIC_PARTITIONS: '3',
        PORT: String(port),
        RELAY_BATCH_SIZE: '20',
        LOG_LEVEL: 'warn',
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    child.stderr?.on('data', (chunk: Buffer) => {
      childStderr += chunk.toString();
    });
    // The child's last /metrics before the SIGKILL (its commit-to-publish histogram is checked at the end).
    let childMetrics = '';
    const childPublished = async (): Promise<number> => {
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      childMetrics = text;
      return metricSeries(text, 'outbox_published_total').reduce((sum, s) => sum + s.value, 0);
    };
    await waitFor(async () => (await fetch(`http://127.0.0.1:${port}/readyz`)).status === 200, {
      timeoutMs: 30_000,
      message: `child relay ready (stderr: ${childStderr.slice(-500)})`,
    });

    const relays = [
      await startTestRelay({
        databaseUrl: db.url,
        pool: db.pool,
        brokers: testBrokers(),
        prefix,
        env: { RELAY_BATCH_SIZE: '100' },
      }),
      await startTestRelay({
        databaseUrl: db.url,
        pool: db.pool,
        brokers: testBrokers(),
        prefix,
        env: { RELAY_BATCH_SIZE: '100' },
      }),
    ];
    const collector = await collectMessages([`${prefix}accounts.user-events`]);
    try {
      const rows = interleavedRows(ROWS, KEYS);
      const half = Math.floor(rows.length / 2);
      for (let i = 0; i < half; i += ROWS_PER_COMMIT)
        await insertOutboxRows(db.pool, rows.slice(i, Math.min(i + ROWS_PER_COMMIT, half)));

      await waitFor(async () => (await childPublished()) > 0, {
        message: 'the child relay published something before being killed',
      });
      child.kill('SIGKILL');
      for (let i = half; i < rows.length; i += ROWS_PER_COMMIT)
        await insertOutboxRows(db.pool, rows.slice(i, i + ROWS_PER_COMMIT));

      await waitFor(async () => (await outboxCount(db.pool)) === 0, {
        timeoutMs: 60_000,
        message: 'outbox drained by the two survivors',
      });
      const expected = new Map<string, number>();
      for (const r of rows) expected.set(r.key, (expected.get(r.key) ?? 0) + 1);
      await waitFor(
        () => orderingProblems(collector.messages, expected).length === 0 || collector.messages.length > ROWS * 3,
        {
          timeoutMs: 30_000,
          message: 'every row consumed',
        },
      ).catch(() => undefined);

      expect(orderingProblems(collector.messages, expected)).toEqual([]);
      expect(child.signalCode).toBe('SIGKILL');
      expect(collector.messages.length).toBeGreaterThanOrEqual(ROWS);
      // The contract's outbox_commit_to_publish_seconds{topic}: the dashboard's latency panels sum by topic.
      expect(labelNameSets(childMetrics, 'outbox_commit_to_publish_seconds_count')).toEqual([['service', 'topic']]);
      expect(
        metricSeries(childMetrics, 'outbox_commit_to_publish_seconds_count').find(
          (s) => s.labels.topic === 'accounts.user-events',
        )?.value,
      ).toBeGreaterThan(0);
    } finally {
      await collector.stop();
      for (const relay of relays) await relay.stop();
    }
  });
});

/** Rows whose keys interleave (k0,k1,…,k0,k1,…) with a per-key sequence number: commit order = seq. */
function interleavedRows(count: number, keys: number): TestOutboxRow[] {
  const next = new Map<string, number>();
  return Array.from({ length: count }, (_, i) => {
    const key = `key-${(i * 7919) % keys}`;
    const seq = next.get(key) ?? 0;
    next.set(key, seq + 1);
    return { key, seq };
  });
}
