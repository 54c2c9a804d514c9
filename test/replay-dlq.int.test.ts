import { buildEnvelope } from '@shared/events';
import { topicNames } from '@shared/topics';
import { replayDlq } from '../scripts/replay-dlq';
import { collectMessages, createTopic, testKafka, uniquePrefix } from './support/infra';

function mailRequested(n: number, expiresAt = '2099-01-01T00:00:00.000Z') {
  const userId = `5b0f3c52-3c84-4b53-9a43-3d3b1f3e0a0${n}`;
  return buildEnvelope({
    type: 'mail.requested',
    aggregateType: 'user',
    aggregateId: userId,
    payload: { request_id: `8f5e8a3e-6a3c-4d1b-a1b3-6e4f7b0c2d1${n}`, user_id: userId, to: `user${n}@example.com`, template: 'email_confirmation', vars: { code: '123456', expires_at: expiresAt } },
  });
}

describe('replaying mail.requests.dlq', () => {
  test('when the DLQ holds requests, a poison message and an expired code, re-produces only the valid requests to mail.requests', async () => {
    const prefix = uniquePrefix('replay');
    const topics = topicNames(prefix);
    await createTopic(topics.mailRequestsDlq, 2);
    await createTopic(topics.mailRequests, 2);
    const [a, b, expired] = [mailRequested(1), mailRequested(2), mailRequested(3, '2000-01-01T00:00:00.000Z')];
    const producer = testKafka().producer();
    await producer.connect();
    await producer.send({
      topic: topics.mailRequestsDlq,
      messages: [
        { key: a.aggregate_id, value: JSON.stringify({ original: a, error: { class: 'auth', message: 'x' }, attempts: 8, failed_at: new Date().toISOString() }) },
        { key: b.aggregate_id, value: JSON.stringify({ original: JSON.stringify(b), error: { class: 'timeout', message: 'x' }, attempts: 8, failed_at: null }) },
        { key: expired.aggregate_id, value: JSON.stringify({ original: expired, error: { class: 'timeout', message: 'x' }, attempts: 8 }) },
        { key: 'poison', value: JSON.stringify({ original: 'not an envelope', error: { class: 'unknown', message: 'x' } }) },
      ],
    });
    await producer.disconnect();
    const collector = await collectMessages([topics.mailRequests]);
    try {
      const dry = await replayDlq({ kafka: testKafka('replay'), topicPrefix: prefix, dryRun: true, idleMs: 5_000, log: () => undefined });
      expect(dry).toEqual({ read: 4, replayed: 2, skipped: 1, invalid: 1 });

      const real = await replayDlq({ kafka: testKafka('replay'), topicPrefix: prefix, dryRun: false, idleMs: 5_000, log: () => undefined });
      expect(real).toEqual({ read: 4, replayed: 2, skipped: 1, invalid: 1 });
      const replayed = await collector.waitForMessages(2);
      const values = replayed.map((m) => JSON.parse(m.value ?? 'null') as typeof a);
      expect(values.map((v) => v.payload.request_id).sort()).toEqual([a.payload.request_id, b.payload.request_id].sort());
      expect(replayed.map((m) => m.key).sort()).toEqual([a.aggregate_id, b.aggregate_id].sort());
      expect(replayed.every((m) => m.headers.type === 'mail.requested' && m.headers['original-id'] !== m.headers.id)).toBe(true);
    } finally {
      await collector.stop();
    }
  });
});
