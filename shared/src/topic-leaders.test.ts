import { KafkaJSNonRetriableError, KafkaJSProtocolError } from 'kafkajs';
import { waitForTopicLeaders } from './topic-leaders';

type Answer = {
  topics: {
    name: string;
    partitions: {
      partitionErrorCode: number;
      partitionId: number;
      leader: number;
      replicas: number[];
      isr: number[];
    }[];
  }[];
};

const partition = (partitionId: number, leader: number) => ({
  partitionErrorCode: 0,
  partitionId,
  leader,
  replicas: [1],
  isr: [1],
});
const led = (name: string): Answer['topics'][number] => ({ name, partitions: [partition(0, 1), partition(1, 1)] });
const brokerError = (type: string, code: number, retriable: boolean) =>
  new KafkaJSProtocolError({ type, code, retriable, message: `broker says ${type}` } as unknown as Error);

/** An admin whose metadata answers are given in order (an Error is thrown); the last one repeats. */
function fakeAdmin(answers: (Answer | Error)[]) {
  let calls = 0;
  return {
    calls: () => calls,
    fetchTopicMetadata: async () => {
      const answer = answers[Math.min(calls, answers.length - 1)];
      calls += 1;
      if (answer instanceof Error) throw answer;
      return answer as Answer;
    },
  };
}

describe('waitForTopicLeaders', () => {
  test(
    'when the broker first does not know the new topic, then has a partition without a leader, then it waits ' +
      'until every partition is led',
    async () => {
      const admin = fakeAdmin([
        brokerError('UNKNOWN_TOPIC_OR_PARTITION', 3, true),
        // As kafkajs' retrier gives it up: wrapped, the broker's answer as the cause.
        Object.assign(new KafkaJSNonRetriableError(brokerError('LEADER_NOT_AVAILABLE', 5, true)), {
          cause: brokerError('LEADER_NOT_AVAILABLE', 5, true),
        }),
        { topics: [led('a'), { name: 'b', partitions: [partition(0, 1), partition(1, -1)] }] },
        { topics: [led('a'), led('b')] },
      ]);
      await waitForTopicLeaders(admin, ['a', 'b'], { intervalMs: 1 });
      expect(admin.calls()).toBe(4);
    },
  );

  test('when the broker answers anything else (here: not authorized), then that error is thrown at once', async () => {
    const denied = brokerError('TOPIC_AUTHORIZATION_FAILED', 29, false);
    const admin = fakeAdmin([denied, { topics: [led('a')] }]);
    await expect(waitForTopicLeaders(admin, ['a'], { intervalMs: 1 })).rejects.toBe(denied);
    expect(admin.calls()).toBe(1);
  });

  test('when a topic never gets a leader, then the wait ends at the deadline with an error naming it', async () => {
    const admin = fakeAdmin([{ topics: [led('a'), { name: 'b', partitions: [partition(0, -1)] }] }]);
    await expect(waitForTopicLeaders(admin, ['a', 'b'], { timeoutMs: 50, intervalMs: 5 })).rejects.toThrow(
      'topics without leaders after 50 ms: b (last: partitions without a leader)',
    );
  });
});
