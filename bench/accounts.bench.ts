import http from 'node:http';
import { Registry } from 'prom-client';
import { createPool } from '@shared/db';
import { listen } from '@shared/http';
import { createLogger } from '@shared/logger';
import { parseAccountsConfig } from '../services/accounts/src/config';
import { createDomainDeps } from '../services/accounts/src/accounts';
import { createAccountsApp } from '../services/accounts/src/entry-points/http/app';
import { createArgon2Hasher } from '../services/accounts/src/domain/password-hasher';
import { postJson } from './load';
import { percentile, round, type Bench, type BenchRow } from './lib';

const CONCURRENCY = 16;
const TARGET_RATIO = 0.8;
const PASSWORD = 'correct horse battery staple';

type Sample = { ops: number; latenciesMs: number[]; errors: number; seconds: number };

/** A closed loop: `concurrency` workers call `op` back to back until `seconds` have passed. */
async function closedLoop(concurrency: number, seconds: number, op: (i: number) => Promise<boolean>): Promise<Sample> {
  const latenciesMs: number[] = [];
  let errors = 0;
  let next = 0;
  const started = performance.now();
  const deadline = started + seconds * 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < deadline) {
        const t0 = performance.now();
        const ok = await op(next++).catch(() => false);
        if (ok) latenciesMs.push(performance.now() - t0);
        else errors++;
      }
    }),
  );
  return { ops: latenciesMs.length, latenciesMs, errors, seconds: (performance.now() - started) / 1000 };
}

const figures = (s: Sample, rateName: string) => ({
  [rateName]: round(s.ops / s.seconds, 1),
  p50_ms: round(percentile(s.latenciesMs, 50), 1),
  p99_ms: round(percentile(s.latenciesMs, 99), 1),
  errors: s.errors,
  samples: s.ops,
});

/**
 * Registration throughput through real HTTP against an in-process accounts app on a fresh database,
 * beside the ceiling every registration pays for: argon2id hashing alone with the same parameters
 * and the same concurrency, measured in the same run.
 */
export const bench: Bench = {
  name: 'accounts',
  async run(ctx): Promise<BenchRow[]> {
    const seconds = Math.max(2, 20 * ctx.scale);
    const db = await ctx.createDatabase();
    const config = parseAccountsConfig({
      NODE_ENV: 'test',
      DATABASE_URL: db.url,
      LOG_LEVEL: 'silent',
      JWT_SECRET: 'bench-secret-that-is-at-least-32-bytes-long',
      DB_POOL_MAX: '20',
      REGISTER_MAX_PER_IP_PER_HOUR: '1000000',
    });
    const logger = createLogger({ service: 'accounts-bench', level: 'silent' });
    const pool = createPool({
      connectionString: db.url,
      logger,
      applicationName: 'accounts-bench',
      max: config.DB_POOL_MAX,
    });
    const params = {
      memoryKib: config.ARGON2_MEMORY_KIB,
      timeCost: config.ARGON2_TIME_COST,
      parallelism: config.ARGON2_PARALLELISM,
    };
    try {
      ctx.log(
        `argon2id ceiling: m=${params.memoryKib} KiB, t=${params.timeCost}, p=${params.parallelism}, concurrency ${CONCURRENCY}, ${seconds} s`,
      );
      const hasher = createArgon2Hasher(params);
      const ceiling = await closedLoop(CONCURRENCY, seconds, async () => {
        await hasher.hash(PASSWORD);
        return true;
      });

      const registry = new Registry();
      const deps = createDomainDeps({ config, logger, registry, pool });
      const server = await listen(createAccountsApp({ ...deps, registry }), 0, '127.0.0.1');
      ctx.log(`registration over HTTP: concurrency ${CONCURRENCY}, ${seconds} s`);
      const runId = Date.now().toString(36);
      const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });
      const registrations = await closedLoop(CONCURRENCY, seconds, async (i) => {
        const body = JSON.stringify({
          email: `bench.${runId}.${i}@example.com`,
          password: PASSWORD,
          first_name: 'Bench',
        });
        return (await postJson(agent, `${server.url}/api/v1/usr/register`, body)) === 201;
      });
      agent.destroy();
      await server.close();

      const ratio = registrations.ops / registrations.seconds / (ceiling.ops / ceiling.seconds);
      return [
        {
          benchmark: 'registration',
          case: `baseline: bare argon2id hash x${CONCURRENCY}`,
          metrics: figures(ceiling, 'hashes_per_s'),
        },
        {
          benchmark: 'registration',
          case: `POST /api/v1/usr/register over HTTP x${CONCURRENCY}`,
          metrics: { ...figures(registrations, 'registrations_per_s'), ratio_to_ceiling: round(ratio, 3) },
          verdict: `target >= ${TARGET_RATIO * 100}% of the argon2 ceiling: ${round(ratio * 100, 1)}% (${ratio >= TARGET_RATIO ? 'met' : 'not met'})`,
        },
      ];
    } finally {
      await pool.end();
      await db.drop();
    }
  },
};
