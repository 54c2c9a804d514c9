/**
 * The benchmark contract: each bench module exports a `Bench`; `npm run bench` (bench/run.ts)
 * provides PostgreSQL and Kafka, runs every bench, prints one table and writes
 * bench/results/<date>.json. A bench compares itself with its baseline IN THE SAME RUN: figures side
 * by side, never a timing assertion.
 */
export type BenchRow = {
  /** e.g. "relay drain 100k" */
  benchmark: string;
  /** e.g. "relay (3 instances)" or "baseline: raw kafkajs producer" */
  case: string;
  /** figures, e.g. { events_per_s: 12345, p50_ms: 3.1, p99_ms: 20 } */
  metrics: Record<string, number>;
  /** a target and whether it was met, e.g. "target >= 50% of baseline: 63% (met)" */
  verdict?: string;
};

export type BenchContext = {
  /** A fresh migrated database of this bench's own (dropped after it). */
  createDatabase: () => Promise<{ url: string; drop: () => Promise<void> }>;
  /** Kafka bootstrap servers of the bench run's broker. */
  brokers: string[];
  /** A unique topic prefix per call (KAFKA_TOPIC_PREFIX). */
  uniquePrefix: (label: string) => string;
  /** Progress line (long operations show progress). */
  log: (line: string) => void;
  /** Scale factor from BENCH_SCALE (default 1): a quick smoke run uses e.g. 0.05. */
  scale: number;
  /** The PostgreSQL server's admin URL (a database that is not a bench's own: for pg_stat_activity). */
  adminUrl: string;
  /** pid of the Kafka JVM when the run launched its own broker (its CPU is then charged to the stack). */
  brokerPid?: number;
};

export type Bench = { name: string; run: (ctx: BenchContext) => Promise<BenchRow[]> };

/** Percentile of an unsorted sample (nearest-rank). */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank] as number;
}

export function round(value: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}
