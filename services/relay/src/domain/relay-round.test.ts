import { Writable } from 'node:stream';
import { Registry } from 'prom-client';
import { createLogger } from '@shared/logger';
import type { OutboxRow } from '../data-access/outbox-row';
import { createRelayMetrics } from '../metrics';
import { createRoundCounter } from './relay-round';

const row = (id: number, topic: string, createdAtMs: number): OutboxRow => ({
  id: String(id),
  eventId: `00000000-0000-4000-8000-${String(id).padStart(12, '0')}`,
  topic,
  key: `user-${id}`,
  type: 'user.registered',
  value: '{}',
  headers: {},
  createdAtMs,
});

/** A series' value by sample name (a histogram's `_count`/`_sum` too) and labels; 0 when absent. */
async function value(registry: Registry, name: string, labels: Record<string, string>): Promise<number> {
  for (const metric of await registry.getMetricsAsJSON()) {
    for (const v of metric.values as { value: number; labels: Record<string, unknown>; metricName?: string }[]) {
      const sample = v.metricName ?? metric.name;
      if (sample === name && Object.entries(labels).every(([k, l]) => v.labels[k] === l)) return Number(v.value);
    }
  }
  return 0;
}

describe('a round is counted after its commit', () => {
  it('counts published rows and their latency per topic, interleaved topics too, and dead letters', async () => {
    const registry = new Registry();
    const lines: string[] = [];
    const logger = createLogger({
      service: 'test',
      level: 'info',
      destination: new Writable({ write: (c, _e, done) => (lines.push(String(c)), done()) }),
    });
    const count = createRoundCounter(createRelayMetrics(registry), logger);
    const ackedAt = 10_000;
    const a = 'mail.requests';
    const b = 'accounts.user-events';
    const published = [row(1, a, 9_000), row(2, b, 9_500), row(3, a, 9_990), row(4, a, 9_999)];
    count({ published, deadLettered: [{ row: row(5, 'bogus', 0), error: 'unknown topic' }], pending: [] }, ackedAt);
    count({ published: [row(6, b, 9_000)], deadLettered: [], pending: [] }, ackedAt);

    expect(await value(registry, 'outbox_published_total', { topic: a })).toBe(3);
    expect(await value(registry, 'outbox_published_total', { topic: b })).toBe(2);
    const observed = (topic: string) => value(registry, 'outbox_commit_to_publish_seconds_count', { topic });
    expect(await observed(a)).toBe(3);
    expect(await observed(b)).toBe(2);
    // Topic a's rows waited 1 s, 10 ms and 1 ms from their insert to the ack.
    expect(await value(registry, 'outbox_commit_to_publish_seconds_sum', { topic: a })).toBeCloseTo(1.011, 3);
    expect(await value(registry, 'outbox_dead_letters_total', { topic: 'unknown' })).toBe(1);
    expect(lines.filter((l) => l.includes('dead-lettered'))).toHaveLength(1);
  });
});
