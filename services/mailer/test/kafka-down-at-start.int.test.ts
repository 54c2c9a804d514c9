import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Kafka, logLevel, Partitioners } from 'kafkajs';
import { topicNames } from '@shared/topics';
import { startKafkaBroker, type BrokerHandle } from '../../../infra/kafka/broker';
import { freePort } from '../../../test/support/ports';
import { waitFor } from '../../../test/support/wait-for';
import { mailRequestMessage } from '../../../test/support/mail-request-message';
import { sealTestCode } from '../../../test/support/payload-key';
import {
  mailRequest,
  spawnMailer,
  startMailerHarness,
  type MailerHarness,
  type MailerProcess,
} from './support/mailer-harness';

/** A mailer started while Kafka is down comes up, says it is not ready, and connects when Kafka does. */
describe('mailer: started while the Kafka broker is down', () => {
  let h: MailerHarness;
  let proc: MailerProcess | undefined;
  let broker: BrokerHandle | undefined;
  let dataDir: string;

  beforeAll(async () => {
    h = await startMailerHarness();
    dataDir = mkdtempSync(path.join(tmpdir(), 'rp-mailer-kafka-'));
  });
  afterAll(async () => {
    proc?.kill('SIGTERM');
    await proc?.exited;
    await broker?.stop();
    await h.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it(
    'when the broker comes up later, then the mailer ' + 'becomes ready by itself and delivers what is requested',
    async () => {
      const kafkaPort = await freePort();
      const httpPort = await freePort();
      proc = spawnMailer({ ...h.env, KAFKA_BROKERS: `127.0.0.1:${kafkaPort}`, PORT: String(httpPort) });
      const base = `http://127.0.0.1:${httpPort}`;

      await waitFor(async () => (await fetch(`${base}/healthz`)).status === 200, {
        timeoutMs: 30_000,
        message: 'healthz while Kafka is down',
      });
      expect((await fetch(`${base}/readyz`)).status).toBe(503);
      expect(proc.child.exitCode).toBeNull();

      broker = await startKafkaBroker({ port: kafkaPort, controllerPort: await freePort(), dataDir });
      await waitFor(async () => (await fetch(`${base}/readyz`)).status === 200, {
        timeoutMs: 90_000,
        message: 'readyz once Kafka is up',
      });

      const plain = mailRequest();
      const request = { ...plain, vars: { ...plain.vars, code: sealTestCode(plain.vars.code, plain.request_id) } };
      const kafka = new Kafka({ brokers: [broker.brokers], clientId: 'test', logLevel: logLevel.NOTHING });
      const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
      await producer.connect();
      await producer.send({
        topic: topicNames(h.env.KAFKA_TOPIC_PREFIX).mailRequests,
        messages: [mailRequestMessage(request)],
      });
      await producer.disconnect();

      await waitFor(() => h.smtp.messages.some((m) => m.to.includes(request.to)), {
        timeoutMs: 60_000,
        message: 'the mail after Kafka came up',
      });
    },
    180_000,
  );
});
