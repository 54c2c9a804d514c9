import type { Component } from './lifecycle';
import type { Logger } from './logger';
import { errorMessage } from './errors';
import type pg from 'pg';
import type { Pool } from './db';
import { autovacuumWarning, findAutovacuumGaps } from './autovacuum';

/**
 * What autovacuum would do for a churning table, done by the service when the server will not: a
 * queue table left alone grows dead rows and dead index entries with every event (each claim then
 * steps over all of them), and its statistics — taken, if ever, while it was nearly empty — keep every
 * cached plan believing it holds a row or two. Autovacuum's own rule, with queue-sized thresholds:
 * VACUUM (ANALYZE) once the dead rows pass `base + scale × live`, ANALYZE alone once as many rows
 * changed since the last one. Without track_counts there are no counts: VACUUM (ANALYZE) every round.
 */
export type TableCounts = { live: number; dead: number; modifiedSinceAnalyze: number };
export type UpkeepThresholds = { base: number; scale: number };
export const UPKEEP_THRESHOLDS: UpkeepThresholds = { base: 1_000, scale: 0.1 };
/** A VACUUM of a large inbox may take minutes; it holds no lock that blocks the services' writes. */
const UPKEEP_QUERY_TIMEOUT_MS = 30 * 60_000;

export function upkeepDue(
  counts: TableCounts | undefined,
  t: UpkeepThresholds = UPKEEP_THRESHOLDS,
): 'vacuum' | 'analyze' | null {
  if (!counts) return 'vacuum';
  const limit = t.base + t.scale * counts.live;
  if (counts.dead > limit) return 'vacuum';
  return counts.modifiedSinceAnalyze > limit ? 'analyze' : null;
}

type Tracked = { relname: string; live: number; dead: number; modified: number; owned: boolean };

/** The counts of the tables that exist among `tables`, and whether this role owns each. */
async function readCounts(pool: Pool, tables: string[]): Promise<{ tracked: boolean; tables: Tracked[] }> {
  const { rows } = await pool.query<Tracked & { tracked: boolean }>(
    `SELECT c.relname::text AS relname, coalesce(s.n_live_tup, 0)::float8 AS live,
            coalesce(s.n_dead_tup, 0)::float8 AS dead, coalesce(s.n_mod_since_analyze, 0)::float8 AS modified,
            pg_has_role(c.relowner, 'USAGE') AS owned, current_setting('track_counts') = 'on' AS tracked
       FROM pg_class c LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
      WHERE c.oid IN (SELECT to_regclass(t) FROM unnest($1::text[]) AS t)`,
    [tables],
  );
  return { tracked: rows[0]?.tracked ?? true, tables: rows };
}

/** VACUUM or ANALYZE on a connection of its own, without the pool's statement timeout (closed after). */
async function maintain(pool: Pool, work: [string, 'vacuum' | 'analyze'][]): Promise<void> {
  const client = await pool.connect();
  let failed: Error | undefined;
  try {
    await client.query('SET statement_timeout = 0; SET lock_timeout = 0');
    for (const [relname, due] of work) {
      const table = `"${relname.replaceAll('"', '""')}"`;
      const sql = due === 'vacuum' ? `VACUUM (ANALYZE, SKIP_LOCKED) ${table}` : `ANALYZE (SKIP_LOCKED) ${table}`;
      await client.query({ text: sql, query_timeout: UPKEEP_QUERY_TIMEOUT_MS } as pg.QueryConfig);
    }
  } catch (err) {
    failed = err instanceof Error ? err : new Error(String(err));
    throw err;
  } finally {
    // Never pooled again: its session has no statement timeout.
    client.release(failed ?? true);
  }
}

export type TableUpkeep = Component & {
  /** One round: VACUUM or ANALYZE the tables that need it. Returns what it did, per table. */
  runOnce: () => Promise<Record<string, 'vacuum' | 'analyze'>>;
};

/**
 * A start-up component: looks once whether autovacuum runs for `tables` and, for those it will not
 * reclaim, warns once and then looks after them itself every `intervalMs` (an unref'd timer; a failed
 * round is logged at debug, a table this role does not own is skipped with one warning). SKIP_LOCKED:
 * another instance vacuuming the same table is not waited for.
 */
export function tableUpkeep(opts: { pool: Pool; logger: Logger; tables: string[]; intervalMs?: number }): TableUpkeep {
  const { pool, logger } = opts;
  const log = logger.child({ component: 'table-upkeep' });
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<unknown> | undefined;
  const notOwned = new Set<string>();

  const runOnce = async (tables = opts.tables): Promise<Record<string, 'vacuum' | 'analyze'>> => {
    const counts = await readCounts(pool, tables);
    const work: [string, 'vacuum' | 'analyze'][] = [];
    for (const t of counts.tables) {
      if (!t.owned) {
        if (!notOwned.has(t.relname)) log.warn({ table: t.relname }, 'cannot VACUUM a table this role does not own');
        notOwned.add(t.relname);
        continue;
      }
      const due = upkeepDue(
        counts.tracked ? { live: t.live, dead: t.dead, modifiedSinceAnalyze: t.modified } : undefined,
      );
      if (due) work.push([t.relname, due]);
    }
    if (work.length === 0) return {};
    const started = performance.now();
    await maintain(pool, work);
    const done = Object.fromEntries(work);
    log.debug({ done, ms: Math.round(performance.now() - started) }, 'table upkeep');
    return done;
  };

  let stopped = false;
  const tick = (tables: string[]): void => {
    if (running || stopped) return;
    running = runOnce(tables)
      .catch((err: unknown) => log.debug({ err: { message: errorMessage(err) } }, 'table upkeep round failed'))
      .finally(() => (running = undefined));
  };

  const start = async (): Promise<void> => {
    void findAutovacuumGaps(pool, opts.tables).then(
      (gaps) => {
        const warning = autovacuumWarning(opts.tables, gaps);
        if (!warning || stopped) return;
        const intervalMs = opts.intervalMs ?? 30_000;
        log.warn(
          { ...warning, upkeep_interval_ms: intervalMs },
          'autovacuum will not reclaim these tables: the service VACUUMs and ANALYZEs them itself when their ' +
            'dead rows pile up; turn autovacuum on (and track_counts) to leave that to the server',
        );
        timer = setInterval(() => tick(warning.tables as string[]), intervalMs);
        timer.unref();
      },
      (err: unknown) => log.debug({ err: { message: errorMessage(err) } }, 'autovacuum check skipped'),
    );
  };

  return {
    name: 'table-upkeep',
    start,
    stop: async () => {
      stopped = true;
      clearInterval(timer);
      await running;
    },
    runOnce: () => runOnce(),
  };
}
