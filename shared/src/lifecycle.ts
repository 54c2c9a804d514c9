import type { Logger } from './logger';
import { createWorkLoop } from './work-loop';

/** Anything long-lived: started in order, stopped in reverse order. */
export type Component = { name: string; start?: () => Promise<void>; stop: () => Promise<void> };

/**
 * Starts components in order and stops them in reverse on SIGINT/SIGTERM (HTTP server first, then
 * consumers and producers, then the pool — the order they are listed in reverse). Every stop request
 * after the first joins the stop in progress: a terminal's Ctrl-C reaches the whole process group
 * while a supervisor (npm start) sends SIGTERM too, and neither may cut the drain short. A stop that
 * hangs past `stopTimeoutMs` exits at once with code 1.
 */
export async function runService(opts: {
  logger: Logger;
  components: Component[];
  stopTimeoutMs?: number;
}): Promise<void> {
  const { logger, components } = opts;
  const started: Component[] = [];
  let stopping: Promise<never> | undefined;
  let failed = false;

  const stopAll = (reason: string, exitCode: number): Promise<never> => {
    if (exitCode !== 0) failed = true;
    if (stopping) {
      logger.info({ reason }, 'stop already in progress: still draining');
      return stopping;
    }
    stopping = drainAndExit(reason);
    return stopping;
  };

  const drainAndExit = async (reason: string): Promise<never> => {
    logger.info({ reason }, 'stopping');
    const timeoutMs = opts.stopTimeoutMs ?? 20_000;
    const timer = setTimeout(() => {
      logger.error({ timeout_ms: timeoutMs }, 'shutdown timed out: exiting');
      process.exit(1);
    }, timeoutMs);
    timer.unref();
    for (const component of [...started].reverse()) {
      try {
        await component.stop();
        logger.info({ component: component.name }, 'stopped');
      } catch (err) {
        failed = true;
        logger.error({ component: component.name, err }, 'stop failed');
      }
    }
    clearTimeout(timer);
    const exitCode = failed ? 1 : 0;
    logger.info({ exit_code: exitCode }, 'stopped all');
    process.exit(exitCode);
  };

  process.on('SIGINT', () => void stopAll('SIGINT', 0));
  process.on('SIGTERM', () => void stopAll('SIGTERM', 0));
  process.on('unhandledRejection', (err) => {
    logger.fatal({ err }, 'unhandled promise rejection');
    void stopAll('unhandledRejection', 1);
  });
  process.on('uncaughtException', (err) => {
    logger.fatal({ err }, 'uncaught exception');
    void stopAll('uncaughtException', 1);
  });

  for (const component of components) {
    try {
      await component.start?.();
      started.push(component);
    } catch (err) {
      logger.fatal({ component: component.name, err }, 'start failed');
      started.push(component);
      await stopAll('start failed', 1);
    }
  }
  logger.info({ components: components.map((c) => c.name) }, 'started');
}

/**
 * A component whose start may fail while a dependency (Kafka) is down: start() returns at once and
 * keeps retrying `component.start` in the background with capped exponential backoff, so the service
 * comes up, answers /healthz (and a /readyz that says what is missing) and connects when it can,
 * instead of crash-looping. stop() cancels the retries, or stops the component once it started.
 */
export function startInBackground(
  component: Component,
  opts: { logger: Logger; baseMs?: number; maxMs?: number },
): Component & { started: () => boolean } {
  let started = false;
  let attempts = 0;
  const log = opts.logger.child({ component: component.name });
  const tryStart = async (): Promise<void> => {
    if (started) return;
    attempts += 1;
    try {
      await component.start?.();
    } catch (err) {
      // A half-started component (say, a connected admin but no producer) is reset before the next try.
      await component.stop().catch(() => undefined);
      throw err;
    }
    started = true;
    if (attempts > 1) log.info({ attempt: attempts }, 'started after retries');
  };
  const loop = createWorkLoop({
    runOnce: tryStart,
    // Once started there is nothing to do until stop.
    idleMs: () => undefined,
    backoff: { baseMs: opts.baseMs ?? 1_000, maxMs: opts.maxMs ?? 30_000 },
    logger: log,
    failureMessage: 'start failed; retrying',
  });
  return {
    name: component.name,
    started: () => started,
    start: loop.start,
    stop: async () => {
      await loop.stop();
      if (started) await component.stop();
    },
  };
}
