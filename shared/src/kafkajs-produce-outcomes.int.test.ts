import { Kafka, logLevel, Partitioners } from 'kafkajs';
import { readWholeTopic } from '../../test/support/broker-side';
import { createTopic, testBrokers, uniquePrefix } from '../../test/support/infra';
import { applyProduceOutcomesPatch, produceErrorFromCode, producePartitionOutcomes } from './kafkajs-produce-outcomes';

/** A record bigger than the broker's 1 MiB limit (message.max.bytes): refused for its partition only. */
const TOO_LARGE = 'x'.repeat(1_200_000);

describe('kafkajs produce outcomes: a failed request still tells which partitions the broker appended', () => {
  it(
    'when one partition of a request is refused, then the error lists every partition and the others are in ' +
      'Kafka once',
    async () => {
      expect(applyProduceOutcomesPatch()).toBe(true);
      const topic = `${uniquePrefix('outcomes')}t`;
      await createTopic(topic, 3);
      const kafka = new Kafka({ brokers: testBrokers(), clientId: 'outcomes-test', logLevel: logLevel.NOTHING });
      const producer = kafka.producer({
        idempotent: true,
        maxInFlightRequests: 1,
        createPartitioner: Partitioners.DefaultPartitioner,
      });
      await producer.connect();
      try {
        const err = await producer
          .sendBatch({
            acks: -1,
            topicMessages: [
              {
                topic,
                messages: [
                  { partition: 0, key: 'a', value: 'p0-1' },
                  { partition: 1, key: 'b', value: TOO_LARGE },
                  { partition: 2, key: 'c', value: 'p2-1' },
                  { partition: 0, key: 'a', value: 'p0-2' },
                ],
              },
            ],
          })
          .then(
            () => undefined,
            (e: unknown) => e,
          );

        expect(err).toBeDefined();
        const outcomes = producePartitionOutcomes(err);
        expect(outcomes && Object.fromEntries(outcomes)).toEqual({
          [`0:${topic}`]: 0,
          [`1:${topic}`]: 10,
          [`2:${topic}`]: 0,
        });
        expect(produceErrorFromCode(10)).toMatchObject({ type: 'MESSAGE_TOO_LARGE', retriable: false });
        const records = await readWholeTopic(testBrokers(), topic);
        expect(records.map((r) => `${r.partition}:${r.value}`).sort()).toEqual(['0:p0-1', '0:p0-2', '2:p2-1']);
      } finally {
        await producer.disconnect();
      }
    },
  );

  it('when a failure carries no answer, then no partition outcome is claimed', () => {
    expect(producePartitionOutcomes(new Error('Closed connection'))).toBeUndefined();
    const wrapped = Object.assign(new Error('retries exhausted'), {
      cause: Object.assign(new Error('too large'), {
        partitionOutcomes: [{ topic: 't', partition: 2, errorCode: 10 }],
      }),
    });
    expect(producePartitionOutcomes(wrapped)).toEqual(new Map([['2:t', 10]]));
  });
});
