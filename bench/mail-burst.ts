import { randomInt, randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { Kafka, Producer } from 'kafkajs';
import type { MailRequestedPayload } from '@shared/events';
import { mailRequestMessage } from '../test/support/mail-request-message';
import { sealTestCode } from '../test/support/payload-key';

/** A burst of mail requests produced to Kafka: when each recipient was requested, and the request ids. */
export type MailBurst = { requestedAt: Map<string, number>; requestIds: Set<string> };

/** `n` confirmation-mail requests, one user each, to `<tag>-<from + i>@example.test`. */
export function mailRequestBatch(tag: string, from: number, n: number): MailRequestedPayload[] {
  return Array.from({ length: n }, (_, j) => {
    const requestId = randomUUID();
    return {
      request_id: requestId,
      user_id: randomUUID(),
      to: `${tag}-${from + j}@example.test`,
      template: 'email_confirmation',
      vars: { code: sealTestCode(String(randomInt(1e6)).padStart(6, '0'), requestId) },
      requested_at: new Date().toISOString(),
    };
  });
}

/** Produces the requests to `topic` as accounts' relay would: an envelope each, keyed by the user. */
export async function sendMailRequests(
  producer: Producer,
  topic: string,
  batch: MailRequestedPayload[],
): Promise<void> {
  await producer.send({ topic, messages: batch.map(mailRequestMessage) });
}

/** Produces `count` confirmation-mail requests (one user each) to `topic`, 500 per produce call. */
export async function produceMailBurst(
  producer: Producer,
  topic: string,
  tag: string,
  count: number,
): Promise<MailBurst> {
  const burst: MailBurst = { requestedAt: new Map(), requestIds: new Set() };
  for (let i = 0; i < count; i += 500) {
    const batch = mailRequestBatch(tag, i, Math.min(500, count - i));
    const at = performance.now();
    for (const p of batch) {
      burst.requestedAt.set(p.to, at);
      burst.requestIds.add(p.request_id);
    }
    await sendMailRequests(producer, topic, batch);
  }
  return burst;
}

/** Counts the `sent` statuses published for these requests (the end of the pipeline), up to all of them. */
export async function waitForStatuses(kafka: Kafka, topic: string, requestIds: Set<string>): Promise<number> {
  const consumer = kafka.consumer({ groupId: `${topic}.bench-${randomUUID()}`, maxWaitTimeInMs: 50 });
  const seen = new Set<string>();
  let done: () => void = () => undefined;
  const finished = new Promise<void>((resolve) => (done = resolve));
  const timer = setTimeout(done, 120_000);
  try {
    await consumer.connect();
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    await consumer.run({
      eachBatch: async ({ batch }) => {
        for (const m of batch.messages) {
          const value = JSON.parse(m.value?.toString() ?? '{}') as {
            payload?: { request_id?: string; status?: string };
          };
          const id = value.payload?.request_id;
          if (value.payload?.status === 'sent' && id !== undefined && requestIds.has(id)) seen.add(id);
        }
        if (seen.size >= requestIds.size) done();
      },
    });
    await finished;
    return seen.size;
  } finally {
    clearTimeout(timer);
    await consumer.disconnect().catch(() => undefined);
  }
}
