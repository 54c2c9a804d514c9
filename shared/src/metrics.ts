import { Registry, collectDefaultMetrics, Histogram } from 'prom-client';

/**
 * How often (ms) the event-loop lag histogram samples the loop. prom-client's default, 10 ms, is a timer
 * waking every process 100 times a second: ~6 CPU ms per second per idle process on this machine
 * (measured: a bare `monitorEventLoopDelay` at 10 ms, 6 ms/s; at 100 ms, 1 ms/s). A stall still shows
 * in full, as the delay of the next sample; only the number of samples per scrape falls.
 */
export const EVENT_LOOP_LAG_RESOLUTION_MS = 100;

/** One registry per service instance (no module-level singleton: tests start several in a process). */
export function createMetricsRegistry(service: string): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ service });
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: EVENT_LOOP_LAG_RESOLUTION_MS });
  return registry;
}

/** Latency buckets that resolve both a fast HTTP call and a 30 s SMTP timeout. */
export const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/** The registry's http_request_duration_seconds (created once; accounts' API and ops apps share it). */
export function createHttpDurationHistogram(registry: Registry): Histogram<'method' | 'route' | 'status_code'> {
  const existing = registry.getSingleMetric('http_request_duration_seconds');
  if (existing) return existing as Histogram<'method' | 'route' | 'status_code'>;
  return new Histogram({
    name: 'http_request_duration_seconds',
    help: 'HTTP request latency by method, route template and status code',
    labelNames: ['method', 'route', 'status_code'],
    buckets: LATENCY_BUCKETS,
    registers: [registry],
  });
}
