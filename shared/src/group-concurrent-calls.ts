/**
 * Runs the calls of `fn` that arrive together — started in the same turn of the event loop, as the
 * eachBatch handlers of several partitions of one fetch are — as ONE call over their items, then hands
 * each caller its own slice of the results (`fn` returns one result per item, in order). One database
 * transaction per fetch instead of one per partition.
 *
 * If the combined call fails, every caller's part runs again on its own, so an error reaches only the
 * caller whose items caused it (a refused event is parked by its own partition's handler, not blamed on
 * another's) and a transient failure is retried by each caller as before. Items of different callers
 * never interleave: the combined list is the callers' lists one after another.
 */
export function groupConcurrentCalls<T, R>(fn: (items: T[]) => Promise<R[]>): (items: T[]) => Promise<R[]> {
  type Call = { items: T[]; resolve: (results: R[]) => void; reject: (err: unknown) => void };
  let waiting: Call[] = [];

  const runAlone = (call: Call): void => {
    fn(call.items).then(call.resolve, call.reject);
  };

  const flush = async (): Promise<void> => {
    const calls = waiting;
    waiting = [];
    const [only] = calls;
    if (calls.length === 1 && only) return runAlone(only);
    let results: R[];
    try {
      results = await fn(calls.flatMap((c) => c.items));
      if (results.length !== calls.reduce((n, c) => n + c.items.length, 0)) {
        throw new Error('a grouped call returned a result count different from its item count');
      }
    } catch {
      for (const call of calls) runAlone(call);
      return;
    }
    let at = 0;
    for (const call of calls) {
      call.resolve(results.slice(at, at + call.items.length));
      at += call.items.length;
    }
  };

  return (items) =>
    new Promise<R[]>((resolve, reject) => {
      waiting.push({ items, resolve, reject });
      // setImmediate: after every handler started in this turn has had its microtasks run and called in.
      if (waiting.length === 1) setImmediate(() => void flush());
    });
}
