import pg from 'pg';
import type { Logger } from '@shared/logger';
import { errorMessage } from '@shared/errors';
import { backoffDelay } from '@shared/backoff';

/**
 * LISTEN outbox on a dedicated connection (never a pooled one: a pooled client would drop the
 * subscription when released). Every notification, and every (re)connection, calls `onWake`: after a
 * reconnection we may have missed notifications, so the relay must look (catch up) at once.
 * Losing the connection is not fatal: the relay's poll keeps working while this reconnects with backoff.
 */
export function createOutboxListener(opts: {
  connectionString: string;
  logger: Logger;
  onWake: (reason: 'notify' | 'connected') => void;
  retryBaseMs: number;
  retryMaxMs: number;
  applicationName?: string;
}) {
  const log = opts.logger.child({ component: 'outbox-listener' });
  let client: pg.Client | undefined;
  let stopped = false;
  let failures = 0;
  let reconnectTimer: NodeJS.Timeout | undefined;

  const scheduleReconnect = (lost: pg.Client) => {
    if (stopped || client !== lost) return;
    client = undefined;
    lost.removeAllListeners('notification');
    lost.end().catch(() => undefined);
    failures += 1;
    const delay = backoffDelay(failures, { baseMs: opts.retryBaseMs, maxMs: opts.retryMaxMs, jitter: 'equal' });
    log.warn({ retry_in_ms: delay }, 'LISTEN connection lost: reconnecting');
    reconnectTimer = setTimeout(() => void connect(), delay);
  };

  const connect = async (): Promise<void> => {
    if (stopped) return;
    const c = new pg.Client({
      connectionString: opts.connectionString,
      application_name: opts.applicationName ?? 'relay-listen',
    });
    client = c;
    c.on('notification', () => opts.onWake('notify'));
    c.on('error', (err) => {
      log.warn({ err: { message: err.message } }, 'LISTEN connection error');
      scheduleReconnect(c);
    });
    c.on('end', () => scheduleReconnect(c));
    try {
      await c.connect();
      await c.query('LISTEN outbox');
    } catch (err) {
      log.warn({ err: { message: errorMessage(err) } }, 'could not LISTEN');
      scheduleReconnect(c);
      return;
    }
    if (failures > 0) log.info('LISTEN connection restored');
    failures = 0;
    opts.onWake('connected');
  };

  return {
    start: async (): Promise<void> => {
      stopped = false;
      await connect();
    },
    stop: async (): Promise<void> => {
      stopped = true;
      clearTimeout(reconnectTimer);
      const c = client;
      client = undefined;
      if (c) await c.end().catch(() => undefined);
    },
  };
}
