/**
 * Bounded concurrency for loops that are one store request per item
 * (`zbk verify`, `zbk manifest rebuild`): the requests overlap, the results
 * are handled one by one in input order, exactly as the sequential loop
 * handled them. Pure: no I/O of its own.
 */

/**
 * Run `task` over `items` with at most `limit` calls in flight, and hand
 * each result to `handle` in input order (the next `handle` only after the
 * previous one returned). A rejected task or a throwing `handle` stops it:
 * no task starts after that, the ones in flight are awaited (none is left
 * running behind the caller), and the first error is thrown. Items whose
 * turn came before the error have been handled, the rest not: the same
 * state a sequential loop leaves, at the cost of at most `limit - 1`
 * requests made ahead.
 */
export async function forEachInOrder<T, R>(
  items: readonly T[],
  limit: number,
  task: (item: T, index: number) => Promise<R>,
  handle: (result: R, item: T, index: number) => void | Promise<void>,
): Promise<void> {
  if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`limit must be a positive integer, got ${limit}`);
  const running: Promise<R>[] = [];
  let started = 0;
  const startUpTo = (end: number): void => {
    for (; started < Math.min(end, items.length); started++) {
      const p = task(items[started]!, started);
      // Observed here so an error of a task ahead of the handled one is never "unhandled".
      p.catch(() => undefined);
      running.push(p);
    }
  };
  try {
    for (let i = 0; i < items.length; i++) {
      startUpTo(i + limit);
      await handle(await running[i]!, items[i]!, i);
    }
  } catch (err) {
    await Promise.allSettled(running);
    throw err;
  }
}
