import { Kafka, logLevel } from 'kafkajs';
import { waitForTopicLeaders } from '../../shared/src/topic-leaders';
import type { System } from '../support/system';
import { startTestStack, type TestStack } from '../support/test-stack';
import { waitFor } from '../support/wait-for';

/**
 * Guarantee 7 on a real 3-node KRaft cluster (replication 3, min.insync.replicas 2): SIGKILL of the
 * broker leading a mail.requests partition fails no registration and loses no mail. The one cluster
 * test of `npm test`; rolling restarts and repeated crashes run in `KAFKA_CLUSTER_SIZE=3 npm run chaos`.
 */
describe('a 3-broker Kafka cluster', () => {
  let stack: TestStack | undefined;
  let system: System;

  beforeAll(async () => {
    stack = await startTestStack({
      kafkaClusterSize: 3,
      counts: { accounts: 1, relay: 1, mailer: 1 },
      env: {
        LOG_LEVEL: 'warn',
        RELAY_POLL_INTERVAL_MS: '200',
        RELAY_RETRY_MAX_MS: '1000',
        MAIL_RETRY_BASE_MS: '300',
        MAIL_RETRY_MAX_MS: '2000',
      },
    });
    system = stack.system;
  }, 240_000);

  afterAll(async () => {
    await stack?.stop();
  }, 60_000);

  it('when the leader of a mail.requests partition is SIGKILLed mid-traffic, every registration succeeds and every mail arrives once', async () => {
    const api = system.accountsUrls()[0] ?? '';
    const register = async (i: number): Promise<string> => {
      const email = `cluster.${Date.now()}.${i}@example.test`;
      const res = await fetch(`${api}/api/v1/usr/register`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ email, password: `cluster-password-${i}` }),
      });
      expect(res.status).toBe(201);
      return email;
    };

    // The topics follow the cluster: replication 3, two replicas must acknowledge every write.
    const admin = new Kafka({
      brokers: system.brokers.split(','),
      clientId: 'cluster-test',
      logLevel: logLevel.NOTHING,
    }).admin();
    await admin.connect();
    try {
      // The services create the topics as they start; a broker may learn of them a moment later.
      await waitForTopicLeaders(admin, ['mail.requests']);
      const meta = await admin.fetchTopicMetadata({ topics: ['mail.requests'] });
      expect(meta.topics[0]?.partitions.every((p) => p.replicas.length === 3)).toBe(true);
      const configs = await admin.describeConfigs({
        resources: [
          { type: 2, name: 'mail.requests', configNames: ['min.insync.replicas', 'unclean.leader.election.enable'] },
        ],
        includeSynonyms: false,
      });
      const entries = Object.fromEntries(
        (configs.resources[0]?.configEntries ?? []).map((e) => [e.configName, e.configValue]),
      );
      expect(entries).toEqual({ 'min.insync.replicas': '2', 'unclean.leader.election.enable': 'false' });
    } finally {
      await admin.disconnect();
    }

    const before = await Promise.all(Array.from({ length: 10 }, (_, i) => register(i)));
    await waitFor(() => before.every((e) => system.smtp.messages.some((m) => m.to.includes(e))), {
      timeoutMs: 60_000,
      message: 'mail before the crash',
    });

    const leader = await system.leaderOf('mail.requests', 0);
    await system.crashBroker(leader);
    const during: string[] = [];
    for (let i = 10; i < 40; i++) during.push(await register(i));
    await system.restartBroker(leader);
    const all = [...before, ...during];

    await waitFor(() => all.every((e) => system.smtp.messages.some((m) => m.to.includes(e))), {
      timeoutMs: 120_000,
      message: 'every mail after the leader crash',
    });
    const counts = all.map((e) => system.smtp.messages.filter((m) => m.to.includes(e)).length);
    expect(counts.filter((n) => n !== 1)).toEqual([]);
  }, 300_000);
});
