/*
 * The Java client's murmur2 (org.apache.kafka.common.utils.Utils.murmur2), which kafkajs' default
 * partitioner also uses, in 32-bit integer arithmetic. kafkajs 2.2.4 computes it on its `Long` class, a
 * BigInt wrapper that allocates an object and a BigInt per operation and never truncates: 5-7 µs per
 * UUID key here, ~6 % of the relay's event loop in a profile of its drain (docs/performance.md, ninth
 * round). Java's `int` arithmetic wraps at 32 bits, and products, xors and shifts of the low 32 bits do
 * not depend on the higher ones, so the results are identical: murmur2.test.ts compares them with
 * kafkajs' own function.
 */
const SEED = 0x9747b28c;
const M = 0x5bd1e995;
const SCRATCH = Buffer.allocUnsafe(1_024);

/**
 * murmur2 of a key's bytes, as a signed 32-bit integer like Java's. Anything but a Buffer is hashed as
 * the UTF-8 of its string form, as kafkajs does.
 */
export function murmur2(key: Buffer | string): number {
  let data: Buffer;
  let length: number;
  if (Buffer.isBuffer(key)) {
    data = key;
    length = key.length;
  } else {
    const text = String(key);
    // A short key's UTF-8 goes into one reused buffer (no Buffer per key): at most 3 bytes per UTF-16 unit.
    if (text.length * 3 <= SCRATCH.length) {
      data = SCRATCH;
      length = SCRATCH.write(text);
    } else {
      data = Buffer.from(text);
      length = data.length;
    }
  }
  let h = SEED ^ length;
  const length4 = length >>> 2;
  for (let i = 0; i < length4; i++) {
    const i4 = i * 4;
    let k = (data[i4] as number) | ((data[i4 + 1] as number) << 8);
    k |= ((data[i4 + 2] as number) << 16) | ((data[i4 + 3] as number) << 24);
    k = Math.imul(k, M);
    k ^= k >>> 24;
    k = Math.imul(k, M);
    h = Math.imul(h, M) ^ k;
  }
  const tail = length & ~3;
  const rest = length & 3;
  if (rest === 3) h ^= (data[tail + 2] as number) << 16;
  if (rest >= 2) h ^= (data[tail + 1] as number) << 8;
  if (rest >= 1) h = Math.imul(h ^ (data[tail] as number), M);
  h ^= h >>> 13;
  h = Math.imul(h, M);
  h ^= h >>> 15;
  return h;
}

/** The partition kafkajs' default partitioner (and the Java client's) picks for a key among `count`. */
export function partitionForKey(key: Buffer | string, count: number): number {
  return (murmur2(key) & 0x7fffffff) % count;
}
