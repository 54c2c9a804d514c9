import http from 'node:http';
import { percentile, round } from './lib';

/**
 * A closed-loop load generator: `concurrency` clients each send the next request as soon as the
 * previous one answered, for `durationMs`. Returns throughput and latency percentiles.
 */
export async function closedLoop(opts: {
  concurrency: number;
  durationMs: number;
  request: (i: number) => Promise<boolean>;
  onProgress?: (done: number) => void;
}): Promise<{
  requests: number;
  ok: number;
  errors: number;
  per_s: number;
  p50_ms: number;
  p99_ms: number;
  max_ms: number;
}> {
  const latencies: number[] = [];
  let next = 0;
  let ok = 0;
  let errors = 0;
  const started = Date.now();
  const deadline = started + opts.durationMs;
  let lastProgress = started;
  await Promise.all(
    Array.from({ length: opts.concurrency }, async () => {
      while (Date.now() < deadline) {
        const i = next++;
        const t0 = performance.now();
        let success = false;
        try {
          success = await opts.request(i);
        } catch {
          success = false;
        }
        latencies.push(performance.now() - t0);
        if (success) ok += 1;
        else errors += 1;
        if (opts.onProgress && Date.now() - lastProgress > 5_000) {
          lastProgress = Date.now();
          opts.onProgress(latencies.length);
        }
      }
    }),
  );
  const elapsed = (Date.now() - started) / 1000;
  return {
    requests: latencies.length,
    ok,
    errors,
    per_s: round(latencies.length / elapsed, 1),
    p50_ms: round(percentile(latencies, 50), 1),
    p99_ms: round(percentile(latencies, 99), 1),
    max_ms: round(Math.max(...latencies), 1),
  };
}

/**
 * POSTs JSON over a keep-alive node:http agent: a real HTTP round trip, with a client much lighter
 * than fetch (undici), whose CPU would otherwise be charged to the service in this one process (and
 * which competes for the same cores as the stack under test).
 */
export function postJson(agent: http.Agent, url: string, body: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const headers = { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) };
    const req = http.request(url, { method: 'POST', agent, headers }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * An open-loop load generator: request i is started at start + i / ratePerSecond whether or not the
 * earlier ones answered (what a steady arrival rate looks like to the service), for `durationMs`.
 */
export async function openLoop(opts: {
  ratePerSecond: number;
  durationMs: number;
  request: (i: number) => Promise<boolean>;
}): Promise<{ requests: number; ok: number; per_s: number; p50_ms: number; p99_ms: number }> {
  const total = Math.max(1, Math.round((opts.durationMs / 1000) * opts.ratePerSecond));
  const latencies: number[] = [];
  let ok = 0;
  const started = performance.now();
  const inFlight: Promise<void>[] = [];
  for (let i = 0; i < total; i++) {
    const wait = started + (i * 1000) / opts.ratePerSecond - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    const t0 = performance.now();
    inFlight.push(
      opts
        .request(i)
        .catch(() => false)
        .then((success) => {
          latencies.push(performance.now() - t0);
          if (success) ok += 1;
        }),
    );
  }
  await Promise.all(inFlight);
  const elapsed = (performance.now() - started) / 1000;
  return {
    requests: total,
    ok,
    per_s: round(total / elapsed, 1),
    p50_ms: round(percentile(latencies, 50), 1),
    p99_ms: round(percentile(latencies, 99), 1),
  };
}
