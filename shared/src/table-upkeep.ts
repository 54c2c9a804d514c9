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
 * changed since the last one, the limit capped for a table of many kept rows. Without track_counts there
 * are no counts: VACUUM (ANALYZE) every tenth round.
 */
export type TableCounts = { live: number; dead: number; modifiedSinceAnalyze: number };
/** `max` caps the rule for a table that keeps many finished rows (the inbox keeps 7 days of them). */
export type UpkeepThresholds = { base: number; scale: number; max: number };
export const UPKEEP_THRESHOLDS: UpkeepThresholds = { base: 1_000, scale: 0.1, max: 50_000 };
/** Without counts (track_counts off) the timer VACUUMs once every this many rounds. */
const ROUNDS_PER_BLIND_VACUUM = 10;
/** A VACUUM of a large inbox may take minutes; it holds no lock that blocks the services' writes. */
const UPKEEP_QUERY_TIMEOUT_MS = 30 * 60_000;

export function upkeepDue(
  counts: TableCounts | undefined,
  t: UpkeepThresholds = UPKEEP_THRESHOLDS,
): 'vacuum' | 'analyze' | null {
  if (!counts) return 'vacuum';
  const limit = Math.min(t.base + t.scale * counts.live, t.max);
  if (counts.dead > limit) return 'vacuum';
  return counts.modifiedSinceAnalyze > limit ? 'analyze' : null;
}

type Tracked = { relname: string; live: number; dead: number; modified: number; owned: boolean };

/**
 * The counts of the tables that exist among `tables`, and whether this role may VACUUM each: as its
 * owner (or a member of the owning role), the database's owner, a superuser (pg_has_role is true), or,
 * from PostgreSQL 17, with the MAINTAIN privilege.
 */
async function readCounts(pool: Pool, tables: string[]): Promise<{ tracked: boolean; tables: Tracked[] }> {
  const { rows } = await pool.query<Tracked & { tracked: boolean }>(
    `SELECT c.relname::text AS relname, coalesce(s.n_live_tup, 0)::float8 AS live,
            coalesce(s.n_dead_tup, 0)::float8 AS dead, coalesce(s.n_mod_since_analyze, 0)::float8 AS modified,
            (pg_has_role(c.relowner, 'USAGE') OR pg_has_role(d.datdba, 'USAGE')
             OR CASE WHEN current_setting('server_version_num')::int >= 170000
                     THEN has_table_privilege(c.oid, 'MAINTAIN') ELSE false END) AS owned,
            current_setting('track_counts') = 'on' AS tracked
       FROM pg_class c LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
       JOIN pg_database d ON d.datname = current_database()
      WHERE c.oid IN (SELECT to_regclass(t) FROM unnest($1::text[]) AS t)`,
    [tables],
  );
  return { tracked: rows[0]?.tracked ?? true, tables: rows };
}

/**
 * SQLSTATE of PostgreSQL's notice for a table SKIP_LOCKED passed over ("skipping vacuum of … --- lock not
 * available", in the server's language): each statement names one table, so the notice means that one.
 */
const LOCK_NOT_AVAILABLE = '55P03';

/**
 * VACUUM or ANALYZE on a connection of its own, without the pool's statement timeout (closed after).
 * Returns the tables SKIP_LOCKED passed over (another session held a conflicting lock): not done.
 */
async function maintain(
  pool: Pool,
  work: [string, 'vacuum' | 'analyze'][],
  onBackend: (pid: number | undefined) => void,
): Promise<Set<string>> {
  const client = await pool.connect();
  const skipped = new Set<string>();
  let current: string | undefined;
  const onNotice = (notice: { code?: string }): void => {
    if (notice.code === LOCK_NOT_AVAILABLE && current !== undefined) skipped.add(current);
  };
  client.on('notice', onNotice);
  onBackend((client as unknown as { processID?: number }).processID);
  try {
    await client.query('SET statement_timeout = 0; SET lock_timeout = 0');
    for (const [relname, due] of work) {
      current = relname;
      const table = `"${relname.replaceAll('"', '""')}"`;
      const sql = due === 'vacuum' ? `VACUUM (ANALYZE, SKIP_LOCKED) ${table}` : `ANALYZE (SKIP_LOCKED) ${table}`;
      await client.query({ text: sql, query_timeout: UPKEEP_QUERY_TIMEOUT_MS } as pg.QueryConfig);
    }
    return skipped;
  } finally {
    // Never pooled again (destroyed, failed or not): its session has no statement timeout.
    onBackend(undefined);
    client.off('notice', onNotice);
    client.release(true);
  }
}

export type TableUpkeep = Component & {
  /**
   * One round now: VACUUM or ANALYZE the tables that need it (without counts: VACUUM). Returns what it did
   * (a table another session held locked is skipped, and tried again next round).
   */
  runOnce: () => Promise<Record<string, 'vacuum' | 'analyze'>>;
};

type Work = [string, 'vacuum' | 'analyze'][];

/** What a round should do: the tables due by their counts (or, without counts, all of them if `blind`). */
async function dueWork(
  pool: Pool,
  tables: string[],
  blind: boolean,
  onNotOwned: (table: string) => void,
): Promise<Work> {
  const counts = await readCounts(pool, tables);
  const work: Work = [];
  for (const t of counts.tables) {
    if (!t.owned) {
      onNotOwned(t.relname);
      continue;
    }
    const c = { live: t.live, dead: t.dead, modifiedSinceAnalyze: t.modified };
    const due = counts.tracked ? upkeepDue(c) : blind ? 'vacuum' : null;
    if (due) work.push([t.relname, due]);
  }
  return work;
}

/**
 * A start-up component: checks whether autovacuum runs for `tables` (again every `intervalMs` until the
 * check succeeds: the database may be down at start) and, for those it will not reclaim, warns once
 * and then looks after them itself every `intervalMs` (an unref'd timer). The first failure of a streak
 * is a warning; a table this role does not own is skipped with one warning; stop() cancels a VACUUM in
 * progress. SKIP_LOCKED: another instance vacuuming the same table is not waited for.
 */
export function tableUpkeep(opts: { pool: Pool; logger: Logger; tables: string[]; intervalMs?: number }): TableUpkeep {
  const { pool } = opts;
  const log = opts.logger.child({ component: 'table-upkeep' });
  const intervalMs = opts.intervalMs ?? 30_000;
  const notOwned = new Set<string>();
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<unknown> | undefined;
  let backend: number | undefined;
  let stopped = false;
  let failing = false;
  let rounds = 0;
  /** The tables to look after, once the check said which (undefined: not checked yet). */
  let tables: string[] | undefined;

  const onNotOwned = (table: string): void => {
    if (!notOwned.has(table)) log.warn({ table }, 'cannot VACUUM a table this role does not own');
    notOwned.add(table);
  };
  const runOnce = async (on: string[], blind = true): Promise<Record<string, 'vacuum' | 'analyze'>> => {
    const work = await dueWork(pool, on, blind, onNotOwned);
    if (work.length === 0) return {};
    const started = performance.now();
    const skipped = await maintain(pool, work, (pid) => (backend = pid));
    const done = Object.fromEntries(work.filter(([table]) => !skipped.has(table)));
    const ms = Math.round(performance.now() - started);
    log.debug({ done, skipped_locked: [...skipped], ms }, 'table upkeep');
    return done;
  };
  const check = async (): Promise<void> => {
    const warning = autovacuumWarning(opts.tables, await findAutovacuumGaps(pool, opts.tables));
    if (!warning) return clearInterval(timer);
    tables = warning.tables as string[];
    log.warn(
      { ...warning, upkeep_interval_ms: intervalMs },
      'autovacuum will not reclaim these tables: the service VACUUMs and ANALYZEs them itself when their ' +
        'dead rows pile up; turn autovacuum on (and track_counts) to leave that to the server',
    );
  };
  const tick = (): void => {
    if (running || stopped) return;
    const round = tables ? runOnce(tables, rounds++ % ROUNDS_PER_BLIND_VACUUM === 0) : check();
    running = round
      .then(() => void (failing = false))
      .catch((err: unknown) => {
        const fields = { err: { message: errorMessage(err) }, retry_in_ms: intervalMs };
        if (failing) log.debug(fields, 'table upkeep failed');
        else log.warn(fields, tables ? 'table upkeep failed' : 'could not check autovacuum');
        failing = true;
      })
      .finally(() => (running = undefined));
  };

  return {
    name: 'table-upkeep',
    start: async () => {
      timer = setInterval(tick, intervalMs);
      timer.unref();
      tick();
    },
    stop: async () => {
      stopped = true;
      clearInterval(timer);
      if (backend !== undefined) await pool.query('SELECT pg_cancel_backend($1)', [backend]).catch(() => undefined);
      await running;
    },
    runOnce: () => runOnce(opts.tables),
  };
}
