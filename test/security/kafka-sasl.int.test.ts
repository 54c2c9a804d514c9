import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Kafka, logLevel, type SASLOptions } from 'kafkajs';
import { startKafkaBroker, type BrokerHandle } from '../../infra/kafka/broker';
import { uniquePrefix } from '../support/infra';
import { freePort } from '../support/ports';
import type { System } from '../support/system';
import { startTestStack, type TestStack } from '../support/test-stack';
import { waitFor } from '../support/wait-for';

/**
 * Kafka authentication: a broker of its own with a SASL_PLAINTEXT (SCRAM) listener whose user is
 * created at format time. A client without credentials (or with a wrong password) is refused there;
 * accounts, relay and mailer — real processes given KAFKA_SASL_* — carry a registration to the mail.
 */
describe('Kafka over SASL/SCRAM', () => {
  const user = { username: 'registration-platform', password: 'scram-password-that-stays-secret-7' };
  let broker: BrokerHandle;
  let dataDir: string;
  let saslBrokers: string;
  let stack: TestStack | undefined;
  let system: System | undefined;

  beforeAll(async () => {
    dataDir = mkdtempSync(path.join(tmpdir(), 'rp-kafka-sasl-'));
    const saslPort = await freePort();
    broker = await startKafkaBroker({
      port: await freePort(),
      controllerPort: await freePort(),
      dataDir,
      saslListener: { port: saslPort, users: [user] },
    });
    saslBrokers = `127.0.0.1:${saslPort}`;
  }, 120_000);
  afterAll(async () => {
    await stack?.stop();
    await broker?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  const listTopics = async (sasl?: SASLOptions) => {
    const kafka = new Kafka({
      brokers: [saslBrokers],
      clientId: 'sasl-test',
      logLevel: logLevel.NOTHING,
      connectionTimeout: 3_000,
      retry: { retries: 0 },
      ...(sasl ? { sasl } : {}),
    });
    const admin = kafka.admin();
    try {
      await admin.connect();
      return await admin.listTopics();
    } finally {
      await admin.disconnect().catch(() => undefined);
    }
  };

  test(
    'a client without credentials, or with a wrong password, is refused on the SASL listener; the right ' +
      'credentials are accepted',
    async () => {
      await expect(listTopics()).rejects.toThrow();
      await expect(
        listTopics({ mechanism: 'scram-sha-512', username: user.username, password: 'wrong-password' }),
      ).rejects.toThrow(/SASL|authentication/i);
      await expect(listTopics({ mechanism: 'scram-sha-256', ...user })).resolves.toEqual(expect.any(Array));
    },
  );

  test("accounts, relay and mailer given KAFKA_SASL_MECHANISM / _USERNAME / _PASSWORD become ready and deliver a registration's mail, and never log the password", async () => {
    const lines: string[] = [];
    stack = await startTestStack({
      brokers: saslBrokers,
      topicPrefix: uniquePrefix('sasl'),
      counts: { accounts: 1, relay: 1, mailer: 1 },
      env: {
        KAFKA_SASL_MECHANISM: 'scram-sha-512',
        KAFKA_SASL_USERNAME: user.username,
        KAFKA_SASL_PASSWORD: user.password,
        LOG_LEVEL: 'debug',
      },
      onLine: (_label, line) => lines.push(line),
    });
    system = stack.system;
    const email = `sasl.${Date.now()}@example.test`;
    const res = await fetch(`${system.accountsUrls()[0]}/api/v1/usr/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email, password: 'a long enough password' }),
    });
    expect(res.status).toBe(201);

    await waitFor(() => system?.smtp.messages.some((m) => m.to.includes(email)), {
      timeoutMs: 60_000,
      message: 'the confirmation mail over the SASL listener',
    });
    expect(lines.some((l) => l.includes('"kafka_sasl_mechanism":"scram-sha-512"'))).toBe(true);
    expect(lines.join('\n')).not.toContain(user.password);
  }, 180_000);
});
