/**
 * The one property the relay and the mailer decide retry versus dead-letter from (kafkajs' habit):
 * an error is retriable unless it says otherwise.
 */
export function isRetriable(err: unknown): boolean {
  if (err && typeof err === 'object' && 'retriable' in err) {
    return (err as { retriable: unknown }).retriable !== false;
  }
  return true;
}

/** Message of an unknown thrown value, for logs. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
