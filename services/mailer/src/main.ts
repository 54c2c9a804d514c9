import { createServiceBase } from '@shared/service-base';
import { checkDatabaseReady } from '@shared/db';
import { checkKafkaReady } from '@shared/kafka';
import { createOpsApp, httpComponent } from '@shared/http';
import { runService, startInBackground } from '@shared/lifecycle';
import { tableUpkeep } from '@shared/table-upkeep';
import { loadMailerConfig } from './config';
import { createFallbackTransports, createMailTransport } from './data-access/mail-transport';
import { checkMailerSchema } from './data-access/requests-repository';
import { createMailer } from './mailer';

/** Wires the mailer: start order pool, producer, transport, dispatcher, consumer, http; stop in reverse. */
async function main(): Promise<void> {
  const config = loadMailerConfig();
  const { logger, registry, pool, kafka } = createServiceBase({
    service: 'mailer',
    config,
    databaseUrl: config.MAILER_DATABASE_URL,
  });
  const transport = createMailTransport({ config, logger });
  const fallbacks = createFallbackTransports({ config, logger });
  const mailer = createMailer({ pool, kafka, transport, fallbacks, logger, registry, config });
  const { producer, dispatcher, consumer } = mailer.components;
  const admin = kafka.admin();

  await runService({
    logger,
    components: [
      { name: 'pool', stop: () => pool.end() },
      // Statuses leave mailer_outbox once published; finished requests leave with retention.
      tableUpkeep({ pool, logger, tables: ['mailer_outbox', 'mailer_requests'] }),
      // Kafka may be down when the mailer starts: the producer and the consumer connect in the
      // background, while mails already in the inbox are still sent (their statuses wait in
      // mailer_outbox until the producer is up).
      startInBackground(producer, { logger }),
      {
        name: 'transport',
        stop: async () => {
          await transport.close();
          for (const f of fallbacks) await f.transport.close();
        },
      },
      dispatcher,
      startInBackground(consumer, { logger }),
      // Readiness reconnects on demand (checkKafkaReady): a broker that is down now must not stop the start.
      { name: 'kafka-admin', start: () => admin.connect().catch(() => undefined), stop: () => admin.disconnect() },
      httpComponent({
        name: 'http',
        port: config.PORT,
        createApp: () => {
          const checks = [
            {
              name: 'postgres',
              check: async () => {
                await checkDatabaseReady(pool, 'mailer_pgmigrations');
                await checkMailerSchema(pool);
              },
            },
            { name: 'kafka', check: () => checkKafkaReady(admin) },
          ];
          return createOpsApp({ logger, registry, checks });
        },
        onListening: (http) =>
          logger.info(
            {
              port: http.port,
              transport: config.MAIL_TRANSPORT,
              smtp_host: config.SMTP_HOST,
              smtp_port: config.SMTP_PORT,
              smtp_fallbacks: fallbacks.map((f) => f.label),
            },
            'mailer listening',
          ),
      }),
    ],
  });
}

void main();
