import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import { Kafka, logLevel, type KafkaMessage } from 'kafkajs';
import { z } from 'zod';
import { commonEnv, ConfigError, parseEnv } from '../shared/src/config';
import { kafkaSecurity } from '../shared/src/kafka';
import {
  EVENT_TYPE,
  InvalidEventError,
  envelopeHeaders,
  parseEvent,
  type Envelope,
  type MailRequestedPayload,
} from '../shared/src/events';
import { topicNames } from '../shared/src/topics';

/**
 * Re-produces dead-lettered mail requests from mail.requests.dlq to mail.requests, once the cause
 * (SMTP credentials, host, outage) is fixed. Operators' procedure: docs/runbook.md#replaying-the-dlq.
 *
 *   KAFKA_BROKERS=host:9092 npx tsx scripts/replay-dlq.ts [--from-time ISO | --from-offset N]
 *       [--partition P] [--limit N] [--include-expired] [--keep-id] [--dry-run]
 *
 * It reads each partition from the chosen start up to the end offset seen when it started, so records
 * dead-lettered during the replay are left for the next run.
 */

export type MailRequestedEnvelope = Envelope<MailRequestedPayload>;

/** What the mailer wrote to the DLQ, as far as the replay needs it. */
export type DlqRecord = {
  envelope: MailRequestedEnvelope;
  reason: string | null;
  errorClass: string | null;
  attempts: number | null;
  failedAt: string | null;
};

/**
 * The record the mailer writes (services/mailer/src/domain/delivery-events.ts, `dlqRecordEvent`):
 * the original Kafka value as text (`original_value`) or, when it is not valid UTF-8 text, as base64
 * (`original_value_base64`); `original_truncated` when it was cut at 64 KiB.
 */
const dlqRecordSchema = z
  .object({
    reason: z.string().nullable().optional(),
    error: z.string().nullable().optional(),
    error_class: z.string().nullable().optional(),
    request_id: z.string().nullable().optional(),
    attempts: z.number().nullable().optional(),
    original_value: z.string().nullable().optional(),
    original_value_base64: z.string().nullable().optional(),
    original_truncated: z.boolean().optional(),
    dead_lettered_at: z.string().nullable().optional(),
  })
  .passthrough();

/**
 * Reads a DLQ record value as the mailer writes it:
 * `{reason, error, error_class, request_id, user_id, attempts, source, original_value | original_value_base64,
 * original_truncated, dead_lettered_at}`.
 * Throws InvalidEventError ("not replayable") when the record is not that shape, its original was
 * truncated, is missing, or is not a valid mail.requested envelope (a poison message).
 */
export function parseDlqRecord(value: Buffer | string | null): DlqRecord {
  if (value === null) throw new InvalidEventError('DLQ record has no value');
  let json: unknown;
  try {
    json = JSON.parse(typeof value === 'string' ? value : value.toString('utf8'));
  } catch {
    throw new InvalidEventError('DLQ record is not JSON');
  }
  const parsed = dlqRecordSchema.safeParse(json);
  if (!parsed.success) throw new InvalidEventError("DLQ record is not in the mailer's format");
  const r = parsed.data;
  if (r.original_truncated) throw new InvalidEventError('the original value was truncated in the DLQ record');
  let raw: Buffer;
  if (typeof r.original_value === 'string') raw = Buffer.from(r.original_value, 'utf8');
  else if (typeof r.original_value_base64 === 'string') raw = Buffer.from(r.original_value_base64, 'base64');
  else throw new InvalidEventError('the DLQ record holds no original value');
  return {
    envelope: parseEvent(raw, EVENT_TYPE.mailRequested),
    reason: r.reason ?? null,
    errorClass: r.error_class ?? null,
    attempts: r.attempts ?? null,
    failedAt: r.dead_lettered_at ?? null,
  };
}

export type ReplayPlan = { replay: true; envelope: MailRequestedEnvelope } | { replay: false; reason: string };

/**
 * Decides what to re-produce for one dead-lettered request. By default the envelope gets a new id:
 * the mailer treats a `mail.requested` whose request_id it holds as `failed` but whose envelope id is
 * new as a replay and sends it again; the same envelope id is a plain redelivery and is ignored. The
 * payload, request_id included, stays the same, so accounts updates the same request's status. A confirmation code past its expiry is not worth a mail: the user must ask for a resend.
 */
export function planReplay(
  record: DlqRecord,
  opts: { now: Date; includeExpired?: boolean; keepId?: boolean },
): ReplayPlan {
  const expiresAt = record.envelope.payload.vars.expires_at;
  if (!opts.includeExpired && expiresAt !== undefined && Date.parse(expiresAt) <= opts.now.getTime()) {
    return {
      replay: false,
      reason: `code expired at ${expiresAt} (the user can request a resend; --include-expired sends anyway)`,
    };
  }
  if (opts.keepId) return { replay: true, envelope: record.envelope };
  return { replay: true, envelope: { ...record.envelope, id: randomUUID(), occurred_at: opts.now.toISOString() } };
}

/** j***@example.com: enough to recognise a user in a terminal, not a list of addresses. */
export function maskAddress(address: string): string {
  const at = address.lastIndexOf('@');
  if (at <= 0) return '***';
  return `${address[0]}***${address.slice(at)}`;
}

export type ReplayOptions = {
  kafka: Kafka;
  topicPrefix?: string;
  /** Start of each partition: an offset, a time (the first record at or after it), or the beginning. */
  from?: { offset: bigint } | { time: Date };
  partition?: number;
  limit?: number;
  dryRun: boolean;
  includeExpired?: boolean;
  keepId?: boolean;
  /** Gives up on a partition when nothing arrives for this long (transaction markers can hide the last offsets). */
  idleMs?: number;
  now?: () => Date;
  log?: (line: string) => void;
};

export type ReplaySummary = { read: number; replayed: number; skipped: number; invalid: number };

/** Reads mail.requests.dlq from the chosen start to its current end and re-produces the originals. */
export async function replayDlq(opts: ReplayOptions): Promise<ReplaySummary> {
  const topics = topicNames(opts.topicPrefix ?? '');
  const log = opts.log ?? ((line: string) => console.log(line));
  const now = opts.now ?? (() => new Date());
  const summary: ReplaySummary = { read: 0, replayed: 0, skipped: 0, invalid: 0 };

  const admin = opts.kafka.admin();
  await admin.connect();
  // Per partition: [next offset to read, end offset when we started).
  const ranges = new Map<number, { next: bigint; end: bigint }>();
  try {
    const ends = await admin.fetchTopicOffsets(topics.mailRequestsDlq);
    const starts =
      'time' in (opts.from ?? {})
        ? await admin.fetchTopicOffsetsByTimestamp(topics.mailRequestsDlq, (opts.from as { time: Date }).time.getTime())
        : [];
    for (const p of ends) {
      if (opts.partition !== undefined && p.partition !== opts.partition) continue;
      const low = BigInt(p.low);
      const end = BigInt(p.high);
      let next = low;
      if (opts.from && 'offset' in opts.from) next = opts.from.offset > low ? opts.from.offset : low;
      const byTime = starts.find((s) => s.partition === p.partition);
      // kafkajs answers -1 (or the end) when no record is at or after the time.
      if (byTime) next = BigInt(byTime.offset) < 0n ? end : BigInt(byTime.offset);
      if (next < end) ranges.set(p.partition, { next, end });
    }
  } finally {
    await admin.disconnect();
  }
  if (ranges.size === 0) {
    log(`nothing to replay on ${topics.mailRequestsDlq} from the chosen start`);
    return summary;
  }
  log(
    `reading ${topics.mailRequestsDlq}: ${[...ranges].map(([p, r]) => `partition ${p} offsets ${r.next}..${r.end - 1n}`).join(', ')}`,
  );

  const producer = opts.kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  // A throwaway group with auto-commit off: the replay never moves anyone's committed offsets.
  const consumer = opts.kafka.consumer({
    groupId: `${opts.topicPrefix ?? ''}replay-dlq-${randomUUID()}`,
    sessionTimeout: 10_000,
    heartbeatInterval: 1_000,
  });
  if (!opts.dryRun) await producer.connect();
  await consumer.connect();
  try {
    await consumer.subscribe({ topic: topics.mailRequestsDlq, fromBeginning: true });
    let finish: () => void = () => undefined;
    const finished = new Promise<void>((resolve) => (finish = resolve));
    let idleTimer: NodeJS.Timeout | undefined;
    const armIdle = () => {
      clearTimeout(idleTimer);
      idleTimer = setTimeout(() => {
        log(
          `no record for ${opts.idleMs ?? 10_000} ms; stopping before ${[...ranges].map(([p, r]) => `partition ${p} offset ${r.next}`).join(', ')}`,
        );
        finish();
      }, opts.idleMs ?? 10_000);
    };
    const handle = async (partition: number, message: KafkaMessage): Promise<void> => {
      const range = ranges.get(partition);
      const offset = BigInt(message.offset);
      if (!range || offset < range.next || offset >= range.end) return;
      range.next = offset + 1n;
      if (range.next >= range.end) ranges.delete(partition);
      summary.read += 1;
      const where = `${partition}/${offset}`;
      let record: DlqRecord;
      try {
        record = parseDlqRecord(message.value);
      } catch (err) {
        summary.invalid += 1;
        log(`${where} cannot replay: ${err instanceof Error ? err.message : String(err)}`);
        return;
      }
      const p = record.envelope.payload;
      const about = `request_id=${p.request_id} to=${maskAddress(p.to)} reason=${record.reason ?? '?'} error=${record.errorClass ?? '?'} attempts=${record.attempts ?? '?'} failed_at=${record.failedAt ?? '?'}`;
      const plan = planReplay(record, { now: now(), includeExpired: opts.includeExpired, keepId: opts.keepId });
      if (!plan.replay) {
        summary.skipped += 1;
        log(`${where} ${about} skip: ${plan.reason}`);
        return;
      }
      if (opts.limit !== undefined && summary.replayed >= opts.limit) {
        summary.skipped += 1;
        log(`${where} ${about} skip: --limit ${opts.limit} reached`);
        return;
      }
      if (!opts.dryRun) {
        await producer.send({
          topic: topics.mailRequests,
          messages: [
            {
              key: plan.envelope.aggregate_id,
              value: JSON.stringify(plan.envelope),
              headers: {
                ...envelopeHeaders(plan.envelope),
                'replayed-from': `${topics.mailRequestsDlq}/${where}`,
                'original-id': record.envelope.id,
              },
            },
          ],
        });
      }
      summary.replayed += 1;
      log(`${where} ${about} ${opts.dryRun ? 'would replay' : 'replayed'} as ${plan.envelope.id}`);
    };
    await consumer.run({
      autoCommit: false,
      eachMessage: async ({ partition, message }) => {
        armIdle();
        await handle(partition, message);
        if (ranges.size === 0) finish();
      },
    });
    for (const [partition, range] of ranges)
      consumer.seek({ topic: topics.mailRequestsDlq, partition, offset: range.next.toString() });
    armIdle();
    await finished;
    clearTimeout(idleTimer);
  } finally {
    await consumer.disconnect();
    if (!opts.dryRun) await producer.disconnect();
  }
  return summary;
}

const USAGE = `usage: KAFKA_BROKERS=host:9092 [KAFKA_TOPIC_PREFIX=] npx tsx scripts/replay-dlq.ts [options]
  --from-time ISO      start at the first DLQ record at or after this time (e.g. 2025-01-31T09:00:00Z)
  --from-offset N      start at offset N in every partition (default: the oldest record kept)
  --partition P        only this partition
  --limit N            replay at most N requests
  --include-expired    also replay requests whose confirmation code has expired
  --keep-id            keep the original envelope id (the mailer then ignores it as a redelivery)
  --dry-run            print what would be replayed; produce nothing`;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      'from-time': { type: 'string' },
      'from-offset': { type: 'string' },
      partition: { type: 'string' },
      limit: { type: 'string' },
      'include-expired': { type: 'boolean', default: false },
      'keep-id': { type: 'boolean', default: false },
      'dry-run': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const {
    KAFKA_BROKERS,
    KAFKA_TOPIC_PREFIX,
    KAFKA_SSL,
    KAFKA_SASL_MECHANISM,
    KAFKA_SASL_USERNAME,
    KAFKA_SASL_PASSWORD,
  } = commonEnv(0);
  const env = parseEnv(
    z.object({
      KAFKA_BROKERS,
      KAFKA_TOPIC_PREFIX,
      KAFKA_SSL,
      KAFKA_SASL_MECHANISM,
      KAFKA_SASL_USERNAME,
      KAFKA_SASL_PASSWORD,
    }),
    process.env,
  );
  const int = (name: string, v: string | undefined): number | undefined => {
    if (v === undefined) return undefined;
    if (!/^\d+$/.test(v)) throw new ConfigError([`--${name}: must be a non-negative integer`]);
    return Number(v);
  };
  if (values['from-time'] !== undefined && values['from-offset'] !== undefined)
    throw new ConfigError(['--from-time and --from-offset exclude each other']);
  let from: ReplayOptions['from'];
  if (values['from-time'] !== undefined) {
    const time = new Date(values['from-time']);
    if (Number.isNaN(time.getTime())) throw new ConfigError(['--from-time: must be an ISO 8601 time']);
    from = { time };
  } else if (values['from-offset'] !== undefined) {
    from = { offset: BigInt(int('from-offset', values['from-offset']) ?? 0) };
  }
  const kafka = new Kafka({
    clientId: 'replay-dlq',
    brokers: [...env.KAFKA_BROKERS],
    logLevel: logLevel.WARN,
    ...kafkaSecurity(env),
  });
  const summary = await replayDlq({
    kafka,
    topicPrefix: env.KAFKA_TOPIC_PREFIX,
    from,
    partition: int('partition', values.partition),
    limit: int('limit', values.limit),
    dryRun: values['dry-run'] ?? false,
    includeExpired: values['include-expired'],
    keepId: values['keep-id'],
  });
  console.log(
    `${values['dry-run'] ? 'dry run: ' : ''}read ${summary.read}, ${values['dry-run'] ? 'would replay' : 'replayed'} ${summary.replayed}, skipped ${summary.skipped}, not replayable ${summary.invalid}`,
  );
}

if (require.main === module) {
  main().catch((err: unknown) => {
    if (err instanceof ConfigError) {
      console.error(`replay-dlq: ${err.problems.join('; ')}\n${USAGE}`);
    } else {
      console.error(`replay-dlq: ${err instanceof Error ? err.message : String(err)}`);
    }
    process.exit(1);
  });
}
