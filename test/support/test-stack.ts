import { createTestDatabase, type TestDatabase } from './infra';
import { startSystem, type System, type SystemOptions } from './system';

/** The whole system as real processes on databases of its own, and how to take it all down. */
export type TestStack = { system: System; db: TestDatabase; mailerDb: TestDatabase; stop: () => Promise<void> };

/**
 * startSystem on two fresh test databases — accounts' and the mailer's own, as in production — for the
 * suites that run the whole stack. stop() stops the processes, then drops both databases.
 */
export async function startTestStack(
  opts: Omit<SystemOptions, 'databaseUrl' | 'mailerDatabaseUrl'>,
): Promise<TestStack> {
  const db = await createTestDatabase();
  const mailerDb = await createTestDatabase('mailer');
  const drop = async () => {
    await db.drop();
    await mailerDb.drop();
  };
  try {
    const system = await startSystem({ ...opts, databaseUrl: db.url, mailerDatabaseUrl: mailerDb.url });
    return { system, db, mailerDb, stop: async () => (await system.stop(), await drop()) };
  } catch (err) {
    await drop();
    throw err;
  }
}
