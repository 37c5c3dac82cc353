/**
 * The pace of RestoreObject requests (thaws and copy extensions): a token
 * bucket counting requests (TokenBucket of src/pipeline/bandwidth.ts) and a
 * bound on the requests in flight, so a thousand-volume restore asks for
 * its thaws in parallel without exceeding what AWS accepts.
 *
 * The limit: AWS accepts up to 1,000 restore requests per second per
 * account and region (docs/ARCHITECTURE.md, "Restore"). zbk sends at most
 * THAW_REQUESTS_PER_SECOND = 500 per second — half of that, so another
 * client of the account (a second repository's restore, S3 Batch
 * Operations) still has room — after a burst of at most THAW_BURST = 50,
 * with at most THAW_CONCURRENCY = 32 in flight. In any interval of T
 * seconds at most 500 × T + 50 requests start. A throttled request (503
 * SlowDown) is retried by the store's RetryingStore with backoff, inside
 * its slot.
 *
 * One pacer per store object (`thawPacer`): the steps of a `--wait` run,
 * and every request of a step, share it.
 */
import { TokenBucket, systemLimiterClock, type LimiterClock } from '../../pipeline/bandwidth.js';

/** Restore requests per second at most (AWS: 1,000 per account and region). */
export const THAW_REQUESTS_PER_SECOND = 500;
/** Requests the bucket holds, i.e. that may start at once after a pause. */
export const THAW_BURST = 50;
/** Requests in flight at most. */
export const THAW_CONCURRENCY = 32;

export interface RequestPacerOptions {
  /** Requests per second (default THAW_REQUESTS_PER_SECOND). */
  rate?: number;
  /** Bucket capacity (default THAW_BURST). */
  burst?: number;
  /** In flight at most (default THAW_CONCURRENCY). */
  concurrency?: number;
  /** Monotonic clock and timer (tests inject theirs). */
  clock?: Pick<LimiterClock, 'monotonic' | 'setTimer'>;
}

/** What a pacer has done, for reports, benchmarks and tests. */
export interface RequestPacerStats {
  started: number;
  /** Most requests in flight at once. */
  maxInFlight: number;
  /** Requests that waited for a token (not only for a slot). */
  waited: number;
}

interface Waiter {
  start(): void;
  waited: boolean;
}

/**
 * Runs request functions first come, first served, each once a token and
 * a slot are free. A function's rejection is its caller's; the slot is
 * freed either way.
 */
export class RequestPacer {
  readonly rate: number;
  readonly concurrency: number;
  readonly stats: RequestPacerStats = { started: 0, maxInFlight: 0, waited: 0 };
  private readonly bucket: TokenBucket;
  private readonly clock: Pick<LimiterClock, 'monotonic' | 'setTimer'>;
  private readonly queue: Waiter[] = [];
  private inFlight = 0;
  private cancelTimer: (() => void) | null = null;

  constructor(options: RequestPacerOptions = {}) {
    this.rate = options.rate ?? THAW_REQUESTS_PER_SECOND;
    this.concurrency = options.concurrency ?? THAW_CONCURRENCY;
    if (!Number.isInteger(this.concurrency) || this.concurrency < 1) throw new RangeError(`concurrency must be a positive integer, got ${this.concurrency}`);
    this.clock = options.clock ?? systemLimiterClock();
    this.bucket = new TokenBucket(this.rate, this.clock.monotonic(), options.burst ?? THAW_BURST);
  }

  /** Requests started or waiting, not yet settled. */
  get pending(): number {
    return this.inFlight + this.queue.length;
  }

  /** Call `fn` once the pace allows; settles as it does. */
  run<T>(fn: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push({
        waited: false,
        start: () => {
          let p: Promise<T>;
          try {
            p = fn();
          } catch (err) {
            p = Promise.reject(err);
          }
          p.then(resolve, reject).finally(() => {
            this.inFlight--;
            this.pump();
          });
        },
      });
      this.pump();
    });
  }

  private pump(): void {
    this.cancelTimer?.();
    this.cancelTimer = null;
    while (this.queue.length > 0 && this.inFlight < this.concurrency) {
      const now = this.clock.monotonic();
      const wait = this.bucket.delay(1, now);
      if (wait > 0) {
        const w = this.queue[0]!;
        if (!w.waited) {
          w.waited = true;
          this.stats.waited++;
        }
        this.cancelTimer = this.clock.setTimer(() => {
          this.cancelTimer = null;
          this.pump();
        }, wait);
        return;
      }
      this.bucket.take(1, now);
      const w = this.queue.shift()!;
      this.inFlight++;
      this.stats.started++;
      this.stats.maxInFlight = Math.max(this.stats.maxInFlight, this.inFlight);
      w.start();
    }
  }
}

const pacers = new WeakMap<object, RequestPacer>();

/** The pacer of RestoreObject requests to `store` (one per store object, made on first use). */
export function thawPacer(store: object): RequestPacer {
  let p = pacers.get(store);
  if (!p) {
    p = new RequestPacer();
    pacers.set(store, p);
  }
  return p;
}
