import type { ErrorClass } from '@shared/events';

/**
 * Why one send did not end in SMTP acceptance. `retriable` is the ONE property the dispatcher decides
 * retry versus `failed` + DLQ from; `countsAgainstBreaker` is what the circuit breaker's errorFilter
 * reads (a bad address is not an outage). `detail` is the raw SMTP/socket text: logs only.
 */
export class SendFailure extends Error {
  constructor(
    readonly errorClass: ErrorClass,
    readonly retriable: boolean,
    readonly detail: string,
    /** The whole message had been handed to the server when this failed: it may have been accepted. */
    readonly mayHaveBeenAccepted = false,
  ) {
    super(`mail send failed: ${errorClass}`);
    this.name = 'SendFailure';
  }

  get countsAgainstBreaker(): boolean {
    return this.errorClass !== 'rejected' && this.errorClass !== 'circuit_open';
  }
}
