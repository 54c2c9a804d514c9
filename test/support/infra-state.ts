/**
 * What the global setup provides to every test worker, passed through environment variables (jest
 * workers inherit the environment of the process that ran the global setup).
 */
export type InfraState = {
  /** A PostgreSQL URL with CREATEDB rights (the server the per-file databases live on). */
  adminDatabaseUrl: string;
  /** The accounts-migrated database used as the TEMPLATE for each test file's accounts database. */
  templateDatabase: string;
  /** The mailer-migrated template (migrations/mailer only): the mailer runs on a database of its own. */
  mailerTemplateDatabase: string;
  /** Prefix of every database this run creates (teardown drops them all). */
  databasePrefix: string;
  /** Kafka bootstrap servers. */
  kafkaBrokers: string;
  /** How the infrastructure was provided, for the log. */
  source: { postgres: 'env' | 'testcontainers' | 'local'; kafka: 'env' | 'testcontainers' | 'local' };
};

export const INFRA_ENV = 'RP_TEST_INFRA';

export function readInfraState(): InfraState {
  const raw = process.env[INFRA_ENV];
  if (!raw) throw new Error(`${INFRA_ENV} is not set: run tests through jest (npm test) so the global setup runs`);
  return JSON.parse(raw) as InfraState;
}
