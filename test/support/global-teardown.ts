import pg from 'pg';
import { rmSync } from 'node:fs';
import { stopPid } from '../../infra/kafka/broker';
import type { CleanupState } from './global-setup';
import { INFRA_ENV, type InfraState } from './infra-state';

/** Drops every database this run created, stops the broker or containers, removes temp files. */
export default async function globalTeardown(): Promise<void> {
  const cleanup = (globalThis as { __RP_CLEANUP__?: CleanupState }).__RP_CLEANUP__;
  const raw = process.env[INFRA_ENV];
  if (raw) {
    const state = JSON.parse(raw) as InfraState;
    const admin = new pg.Client({ connectionString: state.adminDatabaseUrl });
    try {
      await admin.connect();
      const { rows } = await admin.query<{ datname: string }>(`SELECT datname FROM pg_database WHERE datname LIKE $1`, [
        `${state.databasePrefix}%`,
      ]);
      for (const { datname } of rows) {
        await admin.query(`DROP DATABASE IF EXISTS "${datname}" WITH (FORCE)`);
      }
    } finally {
      await admin.end().catch(() => undefined);
    }
  }
  if (cleanup) {
    await Promise.all((cleanup.brokerPids ?? []).map((pid) => stopPid(pid)));
    for (const container of cleanup.containers) await container.stop().catch(() => undefined);
    rmSync(cleanup.stateDir, { recursive: true, force: true });
  }
}
