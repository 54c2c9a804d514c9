import { performance } from 'node:perf_hooks';
import type { ErrorClass } from '@shared/events';
import type { SendResult } from '../data-access/mail-transport';
import { classifySmtpError } from './classify-smtp-error';
import type { RenderedMail } from '../data-access/rendered-mail';
import { SendFailure } from './send-failure';
import type { CircuitState, SmtpCircuit } from './smtp-circuit';

export type Provider = { label: string; circuit: SmtpCircuit };

/** One SMTP attempt on one provider within a send. */
export type ProviderTry = { provider: string; errorClass: ErrorClass | null; retriable: boolean; seconds: number };

export type FailoverOutcome =
  | {
      ok: true;
      provider: string;
      result: SendResult;
      seconds: number;
      tries: ProviderTry[];
      possibleDuplicate: boolean;
    }
  | { ok: false; failure: SendFailure; provider: string | null; tries: ProviderTry[]; nextAdmitAt: Date | undefined };

export type ProviderFailover = {
  send: (mail: RenderedMail) => Promise<FailoverOutcome>;
  /** closed when some provider's breaker is closed, half-open when the best is half-open, open when all are. */
  state: () => CircuitState;
  /** While every breaker is open: the earliest moment one lets a trial through. */
  nextAdmitAt: () => Date | undefined;
  /** The primary's breaker is not closed and a fallback admits mail. */
  onFallback: () => boolean;
  onStateChange: (listener: (provider: string, state: CircuitState) => void) => void;
  shutdown: () => void;
};

/**
 * Sends one mail through the first provider whose breaker admits it. A retryable failure (timeout,
 * connection, auth, 4xx) moves the mail to the next provider at once, with no backoff; a permanent
 * `rejected` is final (the address is bad everywhere). A breaker that refuses (open, or half-open with
 * its one trial busy) is skipped without an attempt. Only when no provider accepted does the caller
 * defer the request. The primary is always tried first, so traffic returns to it when its breaker closes.
 */
export function createProviderFailover(providers: Provider[]): ProviderFailover {
  if (providers.length === 0) throw new Error('at least one SMTP provider is required');
  const listeners: ((provider: string, state: CircuitState) => void)[] = [];
  for (const p of providers) p.circuit.onStateChange((state) => listeners.forEach((l) => l(p.label, state)));

  const nextAdmitAt = (): Date | undefined => {
    if (providers.some((p) => p.circuit.state() !== 'open')) return undefined;
    const times = providers.map((p) => p.circuit.reopensAt()?.getTime()).filter((t): t is number => t !== undefined);
    return times.length > 0 ? new Date(Math.min(...times)) : undefined;
  };

  const send = async (mail: RenderedMail): Promise<FailoverOutcome> => {
    const tries: ProviderTry[] = [];
    let last: { failure: SendFailure; provider: string } | undefined;
    let mayHaveBeenAccepted = false;
    for (const p of providers) {
      if (p.circuit.state() === 'open') continue;
      const started = performance.now();
      try {
        const result = await p.circuit.send(mail);
        const seconds = (performance.now() - started) / 1000;
        return { ok: true, provider: p.label, result, seconds, tries, possibleDuplicate: mayHaveBeenAccepted };
      } catch (err) {
        const failure = classifySmtpError(err);
        if (failure.errorClass === 'circuit_open') continue;
        tries.push({
          provider: p.label,
          errorClass: failure.errorClass,
          retriable: failure.retriable,
          seconds: (performance.now() - started) / 1000,
        });
        mayHaveBeenAccepted ||= failure.mayHaveBeenAccepted;
        last = { failure, provider: p.label };
        if (!failure.retriable) break;
      }
    }
    if (!last) {
      const failure = new SendFailure('circuit_open', true, "every SMTP provider's circuit breaker is open");
      return { ok: false, failure, provider: null, tries, nextAdmitAt: nextAdmitAt() };
    }
    const { failure } = last;
    const combined = new SendFailure(failure.errorClass, failure.retriable, failure.detail, mayHaveBeenAccepted);
    return { ok: false, failure: combined, provider: last.provider, tries, nextAdmitAt: nextAdmitAt() };
  };

  return {
    send,
    state: () => {
      const states = providers.map((p) => p.circuit.state());
      if (states.includes('closed')) return 'closed';
      return states.includes('half-open') ? 'half-open' : 'open';
    },
    nextAdmitAt,
    onFallback: () => {
      const [primary, ...fallbacks] = providers;
      return primary?.circuit.state() !== 'closed' && fallbacks.some((p) => p.circuit.state() !== 'open');
    },
    onStateChange: (listener) => {
      listeners.push(listener);
    },
    shutdown: () => providers.forEach((p) => p.circuit.shutdown()),
  };
}
