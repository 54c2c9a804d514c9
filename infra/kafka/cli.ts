import path from 'node:path';
import { ensureKafkaJars, runningBrokerPid, startKafkaBroker, stopPid } from './broker';

/**
 * npm run kafka:start | kafka:stop | kafka:fetch
 * A detached dev broker on KAFKA_PORT (default 9092) with its data in .run/kafka (outside git).
 */
async function main(): Promise<void> {
  const command = process.argv[2];
  const port = Number(process.env.KAFKA_PORT ?? 9092);
  const dataDir = path.resolve(process.env.KAFKA_DATA_DIR ?? path.join(__dirname, '..', '..', '.run', 'kafka'));
  switch (command) {
    case 'fetch':
      ensureKafkaJars();
      return;
    case 'start': {
      const running = runningBrokerPid(dataDir);
      if (running) {
        console.log(`[kafka] already running (pid ${running}) on 127.0.0.1:${port}`);
        return;
      }
      console.log(`[kafka] starting a KRaft broker on 127.0.0.1:${port} (data: ${dataDir})...`);
      const broker = await startKafkaBroker({ port, dataDir, detached: true });
      console.log(`[kafka] ready: KAFKA_BROKERS=${broker.brokers} (pid ${broker.pid}; log ${broker.logFile})`);
      return;
    }
    case 'stop': {
      const pid = runningBrokerPid(dataDir);
      if (!pid) {
        console.log('[kafka] not running');
        return;
      }
      await stopPid(pid);
      console.log(`[kafka] stopped (pid ${pid})`);
      return;
    }
    default:
      console.error('usage: tsx infra/kafka/cli.ts fetch|start|stop');
      process.exit(2);
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(`[kafka] ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
