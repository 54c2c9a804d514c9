import { createRequire } from 'node:module';
import { randomBytes, randomUUID } from 'node:crypto';
import { Partitioners, type PartitionMetadata } from 'kafkajs';
import { explicitPartitioner } from './idempotent-producer';
import { murmur2, partitionForKey } from './murmur2';

// kafkajs' own murmur2 (its default partitioner's hash), the reference this one must equal.
const kafkajsMurmur2 = createRequire(__filename)('kafkajs/src/producer/partitioners/default/murmur2.js') as (
  key: Buffer | string,
) => number;

describe('murmur2', () => {
  it("equals kafkajs' murmur2 for keys of every length mod 4, unicode and arbitrary bytes", () => {
    const keys: (string | Buffer)[] = [
      '',
      'a',
      'ab',
      'abc',
      'abcd',
      'abcde',
      '21',
      'user-42',
      'é',
      '日本語キー',
      '🙂x',
    ];
    for (let i = 0; i < 2_000; i++) keys.push(randomUUID());
    for (let len = 0; len < 64; len++) keys.push(randomBytes(len), randomBytes(len).toString('latin1'));
    for (const key of keys) expect([key, murmur2(key)]).toEqual([key, kafkajsMurmur2(key)]);
  });

  it('when string keys straddle the reused 1,024-byte buffer or follow a longer one, then it equals kafkajs', () => {
    const keys: string[] = [];
    for (let n = 330; n <= 350; n++) keys.push('k'.repeat(n), '日'.repeat(n), `${'\ud800'.repeat(n)}x`);
    for (let n = 160; n <= 180; n++) keys.push('🙂'.repeat(n));
    for (let n = 1_000; n <= 1_030; n++) keys.push('z'.repeat(n));
    // A short key right after a long one: nothing of the long one's bytes may count.
    const interleaved = keys.flatMap((k) => [k, 'abc', 'é', '']);
    for (const key of interleaved) expect([key.length, murmur2(key)]).toEqual([key.length, kafkajsMurmur2(key)]);
  });

  it("matches the Java client's published values", () => {
    // From Apache Kafka's UtilsTest.testMurmur2 (the Java client the default partitioner follows).
    const cases: [string, number][] = [
      ['21', -973932308],
      ['foobar', -790332482],
      ['a-little-bit-long-string', -985981536],
      ['a-little-bit-longer-string', -1486304829],
      ['lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8', -58897971],
    ];
    for (const [key, hash] of cases) expect(murmur2(key)).toBe(hash);
  });

  it("picks the partition kafkajs' default partitioner picks", () => {
    const partitioner = Partitioners.DefaultPartitioner();
    for (const count of [1, 3, 6, 7, 12]) {
      const partitionMetadata = Array.from({ length: count }, (_, partitionId): PartitionMetadata => ({
        partitionId,
        leader: 0,
        partitionErrorCode: 0,
        replicas: [0],
        isr: [0],
      }));
      for (let i = 0; i < 300; i++) {
        const key = randomUUID();
        expect(partitionForKey(key, count)).toBe(
          partitioner({ topic: 't', partitionMetadata, message: { key, value: null } }),
        );
      }
    }
  });
});

describe('explicitPartitioner (the producers of createIdempotentProducer)', () => {
  const partitionMetadata = Array.from({ length: 6 }, (_, partitionId): PartitionMetadata => ({
    partitionId,
    leader: 0,
    partitionErrorCode: 0,
    replicas: [0],
    isr: [0],
  }));
  const partition = explicitPartitioner();
  const reference = Partitioners.DefaultPartitioner();

  it("uses a message's own partition, else its key's (kafkajs' choice), else spreads keyless ones", () => {
    expect(partition({ topic: 't', partitionMetadata, message: { key: 'user-1', value: null, partition: 4 } })).toBe(4);
    expect(partition({ topic: 't', partitionMetadata, message: { key: 'user-1', value: null, partition: 0 } })).toBe(0);
    const bytes = { key: Buffer.from('user-7'), value: null };
    expect(partition({ topic: 't', partitionMetadata, message: bytes })).toBe(
      reference({ topic: 't', partitionMetadata, message: bytes }),
    );
    for (let i = 0; i < 200; i++) {
      const message = { key: randomUUID(), value: null };
      expect(partition({ topic: 't', partitionMetadata, message })).toBe(
        reference({ topic: 't', partitionMetadata, message }),
      );
    }
    const spread = new Set(
      Array.from({ length: 60 }, () => partition({ topic: 't', partitionMetadata, message: { value: 'x' } })),
    );
    expect(spread.size).toBeGreaterThan(1);
    for (const p of spread) expect(p).toBeGreaterThanOrEqual(0);
  });
});
