import { buildEnvelope } from '@shared/events';
import { topicNames } from '@shared/topics';
import { replayDlq } from '../scripts/replay-dlq';
import { dlqRecordEvent, type DlqRecordInput } from '../services/mailer/src/domain/delivery-events';
import { sealTestCode } from './support/payload-key';
import { collectMessages, createTopic, testKafka, uniquePrefix } from './support/infra';

function mailRequested(n: number, expiresAt = '2099-01-01T00:00:00.000Z') {
  const userId = `5b0f3c52-3c84-4b53-9a43-3d3b1f3e0a0${n}`;
  return buildEnvelope({
    type: 'mail.requested',
    aggregateType: 'user',
    aggregateId: userId,
    payload: {
      request_id: `8f5e8a3e-6a3c-4d1b-a1b3-6e4f7b0c2d1${n}`,
      user_id: userId,
      to: `user${n}@example.com`,
      template: 'email_confirmation',
      vars: { code: sealTestCode('123456', `8f5e8a3e-6a3c-4d1b-a1b3-6e4f7b0c2d1${n}`), expires_at: expiresAt },
    },
  });
}

/** A DLQ record exactly as the mailer writes it. */
function dlq(input: Pick<DlqRecordInput, 'original' | 'errorClass'> & Partial<DlqRecordInput>) {
  const record = dlqRecordEvent({ reason: 'retries_exhausted', error: 'x', attempts: 8, ...input }, new Date());
  return { key: record.key, value: record.value, headers: record.headers };
}

describe('replaying mail.requests.dlq', () => {
  test(
    'when the DLQ holds requests, a poison message and an expired code, re-produces only the valid requests to ' +
      'mail.requests',
    async () => {
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
          dlq({
            original: JSON.stringify(a),
            errorClass: 'auth',
            requestId: a.payload.request_id,
            userId: a.aggregate_id,
          }),
          dlq({
            original: Buffer.from(JSON.stringify(b)),
            errorClass: 'timeout',
            requestId: b.payload.request_id,
            userId: b.aggregate_id,
          }),
          dlq({
            original: JSON.stringify(expired),
            errorClass: 'timeout',
            requestId: expired.payload.request_id,
            userId: expired.aggregate_id,
          }),
          dlq({ reason: 'invalid_request', original: 'not an envelope', errorClass: null }),
        ],
      });
      await producer.disconnect();
      const collector = await collectMessages([topics.mailRequests]);
      try {
        const dry = await replayDlq({
          kafka: testKafka('replay'),
          topicPrefix: prefix,
          dryRun: true,
          idleMs: 5_000,
          log: () => undefined,
        });
        expect(dry).toEqual({ read: 4, replayed: 2, skipped: 1, invalid: 1 });

        const real = await replayDlq({
          kafka: testKafka('replay'),
          topicPrefix: prefix,
          dryRun: false,
          idleMs: 5_000,
          log: () => undefined,
        });
        expect(real).toEqual({ read: 4, replayed: 2, skipped: 1, invalid: 1 });
        const replayed = await collector.waitForMessages(2);
        const values = replayed.map((m) => JSON.parse(m.value ?? 'null') as typeof a);
        expect(values.map((v) => v.payload.request_id).sort()).toEqual(
          [a.payload.request_id, b.payload.request_id].sort(),
        );
        expect(replayed.map((m) => m.key).sort()).toEqual([a.aggregate_id, b.aggregate_id].sort());
        expect(
          replayed.every((m) => m.headers.type === 'mail.requested' && m.headers['original-id'] !== m.headers.id),
        ).toBe(true);
      } finally {
        await collector.stop();
      }
    },
  );
});
