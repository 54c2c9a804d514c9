import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startKafkaBroker, type BrokerHandle } from '../../infra/kafka/broker';
import { startKafkaProxy, type KafkaProxy } from './kafka-proxy';
import { freePort } from './ports';

/**
 * A Kafka broker of this test file's own with a second listener (`PROXIED`) advertised at a proxy's
 * port: clients bootstrapped at `proxied` reach the broker only through `proxy`, whose Produce answers
 * can be dropped on demand; `direct` bypasses the proxy (consumers that check what the broker holds).
 */
export type ProxiedBroker = {
  direct: string[];
  proxied: string[];
  proxy: KafkaProxy;
  broker: BrokerHandle;
  stop: () => Promise<void>;
};

export async function startProxiedBroker(): Promise<ProxiedBroker> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'rp-proxied-kafka-'));
  const [port, controllerPort, listenerPort, proxyPort] = [
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
  ];
  const broker = await startKafkaBroker({
    port,
    controllerPort,
    dataDir,
    heapMb: 384,
    extraListeners: [{ name: 'PROXIED', port: listenerPort, advertisedPort: proxyPort }],
  });
  const proxy = await startKafkaProxy({ listenPort: proxyPort, targetPort: listenerPort });
  return {
    direct: [broker.brokers],
    proxied: [`127.0.0.1:${proxyPort}`],
    proxy,
    broker,
    stop: async () => {
      await proxy.close();
      await broker.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
