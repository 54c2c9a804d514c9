import CircuitBreaker from 'opossum';
import type { Logger } from '@shared/logger';
import type { MailerConfig } from '../config';
import type { MailTransport, SendResult } from '../data-access/mail-transport';
import { classifySmtpError } from './classify-smtp-error';
import { RecentAttempts } from './recent-attempts';
import type { RenderedMail } from '../data-access/rendered-mail';

export type CircuitState = 'closed' | 'half-open' | 'open';
export const CIRCUIT_STATE_VALUE: Record<CircuitState, 0 | 1 | 2> = { closed: 0, 'half-open': 1, open: 2 };

export type SmtpCircuit = {
  /** Sends through the breaker; rejects with a classified SendFailure. */
  send: (mail: RenderedMail) => Promise<SendResult>;
  state: () => CircuitState;
  /** While open: when opossum will let the next trial through (BREAKER_RESET_TIMEOUT_MS after opening). */
  reopensAt: () => Date | undefined;
  onStateChange: (listener: (state: CircuitState) => void) => void;
  shutdown: () => void;
};

/**
 * The opossum breaker around the SMTP send. Only outage-like failures count: a `rejected` recipient
 * passes the errorFilter (a bad address is not an outage). opossum's own timeout is off: an attempt
 * ends on nodemailer's SMTP timeouts, and a breaker timeout that abandoned a send still in flight
 * could let it be accepted after we recorded it as failed (a duplicate on retry).
 * On open the pooled connections are dropped, so nothing talks to SMTP until the half-open trial; a
 * mail in flight on one fails at once (`circuit_open`, or `connection` if its body had gone out).
 */
export function createSmtpCircuit(opts: {
  transport: MailTransport;
  config: Pick<
    MailerConfig,
    'BREAKER_ERROR_THRESHOLD_PERCENT' | 'BREAKER_RESET_TIMEOUT_MS' | 'BREAKER_VOLUME_THRESHOLD'
  >;
  logger: Logger;
  /** The provider's label, for logs. */
  label?: string;
}): SmtpCircuit {
  const log = opts.logger.child({
    component: 'smtp-circuit',
    ...(opts.label !== undefined ? { provider: opts.label } : {}),
  });
  let reopensAt: Date | undefined;
  const breaker = new CircuitBreaker((mail: RenderedMail) => opts.transport.send(mail), {
    timeout: false,
    errorThresholdPercentage: opts.config.BREAKER_ERROR_THRESHOLD_PERCENT,
    resetTimeout: opts.config.BREAKER_RESET_TIMEOUT_MS,
    volumeThreshold: opts.config.BREAKER_VOLUME_THRESHOLD,
    errorFilter: (err: unknown) => !classifySmtpError(err).countsAgainstBreaker,
  });
  const listeners: ((state: CircuitState) => void)[] = [];
  const emit = (state: CircuitState) => {
    log.info({ circuit_state: state }, `SMTP circuit ${state}`);
    for (const listener of listeners) listener(state);
  };
  // Besides opossum's rolling window: the last BREAKER_VOLUME_THRESHOLD answered attempts, so an outage
  // opens the breaker after about one SMTP_TIMEOUT_MS however busy the healthy period before it was.
  const recent = new RecentAttempts(opts.config.BREAKER_VOLUME_THRESHOLD, opts.config.BREAKER_ERROR_THRESHOLD_PERCENT);
  // opossum reports an error its errorFilter let pass as a 'success' (and a 'success' while half-open
  // closes the breaker). A `rejected` reply is one: the server answered. A mail cut by this breaker's own
  // reset (`circuit_open`) says nothing about the provider and must not count as an answer.
  const cutByReset = (result: unknown): boolean =>
    result instanceof Error && classifySmtpError(result).errorClass === 'circuit_open';
  breaker.on('success', (result: unknown) => {
    if (!cutByReset(result)) recent.record(null);
  });
  breaker.on('failure', (err: unknown) => {
    recent.record(classifySmtpError(err).errorClass);
    if (breaker.closed && recent.outage()) {
      log.warn({ attempts: opts.config.BREAKER_VOLUME_THRESHOLD }, 'SMTP provider unreachable on most recent attempts');
      breaker.open();
    }
  });
  breaker.on('open', () => {
    reopensAt = new Date(Date.now() + opts.config.BREAKER_RESET_TIMEOUT_MS);
    opts.transport.resetConnections();
    emit('open');
  });
  breaker.on('halfOpen', () => {
    reopensAt = undefined;
    recent.clear();
    emit('half-open');
  });
  breaker.on('close', () => {
    reopensAt = undefined;
    recent.clear();
    emit('closed');
  });

  return {
    send: async (mail) => {
      try {
        return await breaker.fire(mail);
      } catch (err) {
        throw classifySmtpError(err);
      }
    },
    state: () => (breaker.opened ? 'open' : breaker.halfOpen ? 'half-open' : 'closed'),
    reopensAt: () => reopensAt,
    onStateChange: (listener) => {
      listeners.push(listener);
    },
    shutdown: () => breaker.shutdown(),
  };
}
