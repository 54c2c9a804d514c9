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

/**
 * What a log line may say about an unexpected error: its name, code and message. Never the whole
 * object: a PostgreSQL error carries `detail` (e.g. "Key (email)=(ada@example.com) already exists"),
 * `where`, `internalQuery` and the like, which put user data and schema into the logs.
 */
export function errorSummary(err: unknown): { name: string; code?: string; message: string } {
  if (!(err instanceof Error)) return { name: typeof err, message: String(err).slice(0, 500) };
  const code = (err as { code?: unknown }).code;
  return {
    name: err.name,
    ...(typeof code === 'string' || typeof code === 'number' ? { code: String(code) } : {}),
    message: err.message.slice(0, 500),
  };
}
