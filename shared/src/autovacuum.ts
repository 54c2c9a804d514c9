import type { Pool } from './db';

/**
 * Tables that churn (a row per event, deleted once handled) stay small only while autovacuum reclaims
 * their dead rows. It does not when the server runs with `autovacuum` or `track_counts` off, or when
 * a table says `autovacuum_enabled = false`: the table and its indexes then grow with every event
 * until someone runs VACUUM. That is the server's or an operator's choice, not the service's: the
 * service says so once at start and looks after those tables itself (table-upkeep.ts).
 */
export type AutovacuumGaps = {
  /** autovacuum and track_counts are both on for the server. */
  serverOn: boolean;
  /** Tables of those asked for that exist and have autovacuum_enabled set to false. */
  tablesOff: string[];
};

/** Whether autovacuum will run for `tables` (those that do not exist are skipped). */
export async function findAutovacuumGaps(pool: Pool, tables: string[]): Promise<AutovacuumGaps> {
  const { rows } = await pool.query<{ server_on: boolean; tables_off: string[] | null }>(
    `SELECT current_setting('autovacuum') = 'on' AND current_setting('track_counts') = 'on' AS server_on,
            (SELECT array_agg(c.relname::text ORDER BY c.relname)
               FROM pg_class c
              WHERE c.oid IN (SELECT to_regclass(t) FROM unnest($1::text[]) AS t)
                AND EXISTS (SELECT 1 FROM unnest(c.reloptions) AS o
                             WHERE o ~* '^autovacuum_enabled=(false|off|no|n|f|0)$')) AS tables_off`,
    [tables],
  );
  return { serverOn: rows[0]?.server_on ?? true, tablesOff: rows[0]?.tables_off ?? [] };
}

/** The warning's fields, or undefined when autovacuum runs for every table. */
export function autovacuumWarning(tables: string[], gaps: AutovacuumGaps): Record<string, unknown> | undefined {
  if (gaps.serverOn && gaps.tablesOff.length === 0) return undefined;
  return {
    tables: gaps.serverOn ? gaps.tablesOff : tables,
    cause: gaps.serverOn
      ? 'autovacuum_enabled = false on the table'
      : 'autovacuum or track_counts is off on the server',
  };
}
