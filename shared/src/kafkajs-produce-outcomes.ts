import { createRequire } from 'node:module';

/**
 * kafkajs 2.2.4 reads a produce response (src/protocol/requests/produce/v3/response.js, shared by v4-v7)
 * and, if ANY partition answered an error, throws that first error and drops the rest of the answer:
 * which partitions the broker appended is lost. That is why the producers sent one request per
 * partition. This keeps kafkajs' behaviour (same error, same retries, same sequence rollback) and only
 * adds the whole answer to the error it throws, as `partitionOutcomes`: every partition of the request
 * with its error code (0: appended). `producePartitionOutcomes` reads them back from a sendBatch failure
 * (through kafkajs' wrappers' `cause`), so one request may carry many partitions and a failure still
 * tells each partition's fate. Applied once, to the very modules kafkajs uses; a kafkajs whose
 * response modules differ is left alone (and the producers keep one request per partition).
 */

type PartitionOutcome = { topic: string; partition: number; errorCode: number };
type ProduceAnswer = { topics: { topicName: string; partitions: { partition: number; errorCode: number }[] }[] };
type ResponseModule = { parse: (data: ProduceAnswer) => Promise<unknown>; outcomesPatched?: true };

const VERSIONS = [3, 4, 5, 6, 7];
const requireFromHere = createRequire(__filename);
let applied: boolean | undefined;

/** Patches kafkajs' produce response parsers (idempotent); returns whether the patch is in place. */
export function applyProduceOutcomesPatch(): boolean {
  if (applied !== undefined) return applied;
  const modules = VERSIONS.map((v) => {
    try {
      return requireFromHere(`kafkajs/src/protocol/requests/produce/v${v}/response.js`) as Partial<ResponseModule>;
    } catch {
      return undefined;
    }
  });
  if (modules.some((m) => typeof m?.parse !== 'function')) return (applied = false);
  for (const m of modules as ResponseModule[]) {
    if (m.outcomesPatched) continue;
    const parse = m.parse;
    m.parse = async (data) => {
      try {
        return await parse(data);
      } catch (err) {
        if (err !== null && typeof err === 'object') Object.assign(err, { partitionOutcomes: outcomesOf(data) });
        throw err;
      }
    };
    m.outcomesPatched = true;
  }
  return (applied = true);
}

const outcomesOf = (data: ProduceAnswer): PartitionOutcome[] =>
  data.topics.flatMap((t) =>
    t.partitions.map((p) => ({ topic: t.topicName, partition: p.partition, errorCode: p.errorCode })),
  );

/**
 * The broker's last answer to a failed sendBatch, partition by partition (`${partition}:${topic}` →
 * error code, 0 = appended), or undefined when the failure carries none (a lost connection, a timeout:
 * nothing is known about any partition of the request).
 */
export function producePartitionOutcomes(err: unknown): Map<string, number> | undefined {
  for (let e = err, depth = 0; e !== null && typeof e === 'object' && depth < 5; depth += 1) {
    const outcomes = (e as { partitionOutcomes?: PartitionOutcome[] }).partitionOutcomes;
    if (Array.isArray(outcomes)) return new Map(outcomes.map((o) => [`${o.partition}:${o.topic}`, o.errorCode]));
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/** kafkajs' own error for a partition's error code (KafkaJSProtocolError: type, code, retriable). */
export function produceErrorFromCode(code: number): Error {
  const { createErrorFromCode } = requireFromHere('kafkajs/src/protocol/error.js') as {
    createErrorFromCode: (code: number) => Error;
  };
  return createErrorFromCode(code);
}
