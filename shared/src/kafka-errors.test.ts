import {
  KafkaJSConnectionError,
  KafkaJSNonRetriableError,
  KafkaJSNumberOfRetriesExceeded,
  KafkaJSProtocolError,
} from 'kafkajs';
import { classifyPublishError } from './kafka-errors';

const protocolError = (type: string, retriable: boolean) =>
  new KafkaJSProtocolError({ type, code: 0, retriable, message: type } as unknown as Error);

describe('classifyPublishError', () => {
  test('a record the broker refuses for good, as kafkajs wraps it, is rejected', () => {
    const broker = protocolError('MESSAGE_TOO_LARGE', false);
    // The retrier's bail: new KafkaJSNonRetriableError(e, { cause: e.cause || e }) (the typings omit the option).
    const err = Object.assign(new KafkaJSNonRetriableError(broker), { cause: broker });
    expect(classifyPublishError(err)).toBe('rejected');
  });

  test(
    'a broker that cannot be reached is transient although ' + 'kafkajs marks the exhausted retries non-retriable',
    () => {
      const cause = new KafkaJSConnectionError('Connection error: connect ECONNREFUSED');
      const err = new KafkaJSNumberOfRetriesExceeded(cause, { retryCount: 5, retryTime: 1000 });
      expect(err.retriable).toBe(false);
      expect(classifyPublishError(err)).toBe('transient');
    },
  );

  test(
    'a non-retriable error about the cluster (authorization) ' + 'is transient: it must not dead-letter the outbox',
    () => {
      expect(classifyPublishError(protocolError('TOPIC_AUTHORIZATION_FAILED', false))).toBe('transient');
    },
  );

  test('a lost idempotent-producer sequence asks for a new producer', () => {
    expect(classifyPublishError(protocolError('OUT_OF_ORDER_SEQUENCE_NUMBER', false))).toBe('producer_state');
  });

  test('anything that is not a Kafka error is transient', () => {
    expect(classifyPublishError(new Error('boom'))).toBe('transient');
  });
});
