import { Kafka, logLevel } from 'kafkajs';
import { collectMessages, createTopic, uniquePrefix } from './infra';
import { startProxiedBroker, type ProxiedBroker } from './proxied-broker';
import { waitFor } from './wait-for';

describe('the Kafka-framing proxy in front of a broker listener advertised at the proxy', () => {
  let env: ProxiedBroker;
  beforeAll(async () => {
    env = await startProxiedBroker();
  }, 120_000);
  afterAll(async () => {
    await env?.stop();
  });

  it(
    'when a Produce answer is dropped, then the broker ' + 'has the record although the client saw the send fail',
    async () => {
      const topic = `${uniquePrefix('proxy')}blip`;
      await createTopic(topic, 1, env.direct);
      const client = new Kafka({
        brokers: env.proxied,
        clientId: 'proxy-test',
        logLevel: logLevel.NOTHING,
        retry: { retries: 0 },
      });
      const producer = client.producer({
        idempotent: true,
        maxInFlightRequests: 1,
        retry: { retries: 1, initialRetryTime: 50 },
      });
      await producer.connect();
      const collector = await collectMessages([topic], { brokers: env.direct });
      try {
        env.proxy.dropProduceResponses(2, topic);
        await expect(producer.send({ topic, acks: -1, messages: [{ key: 'k', value: 'a' }] })).rejects.toThrow();
        expect(env.proxy.dropped()).toBe(2);
        // Every Produce request went through the proxy: the client learnt the proxy's address from metadata.
        expect(env.proxy.produceRequests.filter((r) => r.topics.includes(topic))).toHaveLength(2);
        const [m] = await collector.waitForMessages(1);
        expect(m?.value).toBe('a');
      } finally {
        await collector.stop();
        await producer.disconnect();
      }
    },
  );

  it('when nothing is dropped, then sends through the proxy are acknowledged', async () => {
    const topic = `${uniquePrefix('proxy')}clear`;
    await createTopic(topic, 1, env.direct);
    const client = new Kafka({ brokers: env.proxied, clientId: 'proxy-test', logLevel: logLevel.NOTHING });
    const producer = client.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    try {
      await producer.send({ topic, acks: -1, messages: [{ key: 'k', value: 'b' }] });
      await waitFor(() => env.proxy.produceRequests.some((r) => r.topics.includes(topic)), {
        message: 'produce seen by the proxy',
      });
    } finally {
      await producer.disconnect();
    }
  });
});
