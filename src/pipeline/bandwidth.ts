/**
 * Bandwidth limits applied: one token bucket per run, shared by every part
 * in flight (a push's parallel uploads, a restore's ranged GETs), whose rate
 * follows the limit's time-of-day schedule (src/config/bandwidth.ts).
 *
 * Burst bound: the bucket holds at most B = max(64 KiB, rate × 250 ms)
 * tokens (bytes), and starts full. In any interval of T seconds at most
 * rate × T + B bytes pass, B being at most one 64 KiB piece or a quarter of
 * a second of the rate, whichever is larger (so never more than 1 s of
 * rate or one 64 KiB chunk). Transfers take their bytes in pieces of at
 * most `chunkSize` = min(64 KiB, max(1 KiB, rate × 250 ms)): at the
 * smallest limit (1 KiB/s) the connection still sees bytes every second.
 *
 * Fairness: requests are served first come, first served; a request larger
 * than the bucket is paid piece by piece while it holds the head of the
 * queue. Nothing is buffered here: a request is a count of bytes, and the
 * caller holds (or has not yet read) the bytes themselves.
 *
 * Clocks: the rate in force is read from the wall clock's local time of
 * day (the service context's `now`), re-read at every request, every grant
 * and at each window boundary (a waiting request is woken there), so a
 * limit changes at the schedule boundary mid-transfer. Tokens refill by a
 * monotonic clock (a wall clock may jump, and tests freeze `ZBK_NOW`). Both
 * clocks and the timer are injectable (`LimiterClock`).
 */
import { setTimeout as nodeSetTimeout, clearTimeout as nodeClearTimeout } from 'node:timers';
import { performance } from 'node:perf_hooks';
import { isUnlimited, KiB, msUntilChange, rateAt, type BandwidthLimit, type Rate } from '../config/bandwidth.js';
import type { TransferPacer } from '../store/object-store.js';
import { AbortError } from './errors.js';

/** The largest piece a transfer takes at once. */
export const MAX_CHUNK = 64 * KiB;
/** Seconds of the rate the bucket holds, and a piece carries at most. */
const BURST_SECONDS = 0.25;
/** The longest a waiting request sleeps before the schedule is read again (a daylight-saving change moves boundaries). */
const MAX_SLEEP_MS = 60_000;

/** Bucket capacity at `rate`: max(64 KiB, rate × 250 ms). */
export function burstFor(rate: number): number {
  return Math.max(MAX_CHUNK, Math.floor(rate * BURST_SECONDS));
}

/** Piece size at `rate` (null: no limit): min(64 KiB, max(1 KiB, rate × 250 ms)). */
export function chunkFor(rate: Rate): number {
  if (rate === null) return MAX_CHUNK;
  return Math.min(MAX_CHUNK, Math.max(KiB, Math.floor(rate * BURST_SECONDS)));
}

/**
 * A token bucket with an explicit clock (milliseconds): pure arithmetic, no
 * timers. Tokens are bytes (or, with an explicit `capacity`, whatever the
 * caller counts: restore requests in src/services/restore/thaw-pacer.ts);
 * the level never exceeds the capacity and never goes below zero (`take` is
 * called only once `delay` said 0).
 */
export class TokenBucket {
  private level: number;
  private at: number;
  capacity: number;

  /** Starts full; `capacity` defaults to burstFor(rate) (`setRate` sets that again). */
  constructor(
    public rate: number,
    now: number,
    capacity?: number,
  ) {
    if (!(rate > 0) || !Number.isFinite(rate)) throw new RangeError('rate must be a positive number of bytes per second');
    if (capacity !== undefined && !(capacity >= 1 && Number.isFinite(capacity))) throw new RangeError('capacity must be at least 1');
    this.capacity = capacity ?? burstFor(rate);
    this.level = this.capacity;
    this.at = now;
  }

  /** Tokens available at `now`. */
  tokens(now: number): number {
    this.refill(now);
    return this.level;
  }

  private refill(now: number): void {
    if (now > this.at) {
      this.level = Math.min(this.capacity, this.level + (this.rate * (now - this.at)) / 1000);
      this.at = now;
    }
  }

  /** A new rate from `now` on: what accrued so far at the old rate is kept, up to the new capacity. */
  setRate(rate: number, now: number): void {
    if (!(rate > 0) || !Number.isFinite(rate)) throw new RangeError('rate must be a positive number of bytes per second');
    this.refill(now);
    this.rate = rate;
    this.capacity = burstFor(rate);
    this.level = Math.min(this.level, this.capacity);
  }

  /** Milliseconds from `now` until `n` tokens (at most the capacity) are there; 0: now. */
  delay(n: number, now: number): number {
    this.refill(now);
    const need = Math.min(n, this.capacity) - this.level;
    // Sub-byte shortfalls are float noise, not a reason to sleep.
    return need <= 1e-6 ? 0 : Math.ceil((need * 1000) / this.rate);
  }

  /** Take `n` tokens (at most the capacity) at `now`. @throws RangeError when they are not there */
  take(n: number, now: number): void {
    if (this.delay(n, now) > 0) throw new RangeError(`internal: took ${n} tokens with ${this.level} in the bucket`);
    this.level = Math.max(0, this.level - Math.min(n, this.capacity));
  }
}

/** The clocks and timer a limiter runs on. */
export interface LimiterClock {
  /** Wall clock: its local time of day picks the schedule's window. */
  now(): Date;
  /** Monotonic milliseconds: refills the bucket. */
  monotonic(): number;
  /** Call `fn` after `ms`; returns a cancel function. */
  setTimer(fn: () => void, ms: number): () => void;
}

/** Real clocks: `now` (the service context's clock), performance.now() and setTimeout. */
export function systemLimiterClock(now: () => Date = () => new Date()): LimiterClock {
  return {
    now,
    monotonic: () => performance.now(),
    setTimer: (fn, ms) => {
      const t = nodeSetTimeout(fn, ms);
      return () => nodeClearTimeout(t);
    },
  };
}

interface Waiter {
  remaining: number;
  resolve(): void;
  reject(err: unknown): void;
  signal?: AbortSignal;
  onAbort?: () => void;
  /** Counted in `stats.waited` already. */
  slept?: boolean;
}

/** What a limiter has let through, for reports and tests. */
export interface LimiterStats {
  /** Bytes granted. */
  granted: number;
  /** Requests that had to wait for tokens. */
  waited: number;
}

/**
 * The limiter of one run: a `TransferPacer` over a `BandwidthLimit`. While
 * the rate in force is `off`, requests pass at once and no bucket exists;
 * when a window with a rate begins, a full bucket is made.
 */
export class BandwidthLimiter implements TransferPacer {
  private bucket: TokenBucket | null = null;
  private readonly queue: Waiter[] = [];
  private cancelTimer: (() => void) | null = null;
  readonly stats: LimiterStats = { granted: 0, waited: 0 };

  constructor(
    readonly limit: BandwidthLimit,
    private readonly clock: LimiterClock,
  ) {}

  /** The rate in force now (read from the schedule), bytes per second or null. */
  get rate(): Rate {
    return this.refresh();
  }

  get chunkSize(): number {
    return chunkFor(this.refresh());
  }

  take(bytes: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(abortReason(signal));
    if (!(bytes > 0)) return Promise.resolve();
    if (this.refresh() === null && this.queue.length === 0) {
      this.stats.granted += bytes;
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const w: Waiter = { remaining: bytes, resolve, reject, ...(signal ? { signal } : {}) };
      if (signal) {
        w.onAbort = () => {
          const i = this.queue.indexOf(w);
          if (i >= 0) this.queue.splice(i, 1);
          reject(abortReason(signal));
          this.pump();
        };
        signal.addEventListener('abort', w.onAbort, { once: true });
      }
      this.queue.push(w);
      this.pump();
    });
  }

  /** Reads the schedule; makes, re-rates or drops the bucket. Returns the rate in force. */
  private refresh(): Rate {
    const rate = rateAt(this.limit, this.clock.now());
    const t = this.clock.monotonic();
    if (rate === null) this.bucket = null;
    else if (!this.bucket) this.bucket = new TokenBucket(rate, t);
    else if (this.bucket.rate !== rate) this.bucket.setRate(rate, t);
    return rate;
  }

  /** Grants what the bucket allows, head of the queue first; sleeps until the next grant or window boundary. */
  private pump(): void {
    this.cancelTimer?.();
    this.cancelTimer = null;
    while (this.queue.length > 0) {
      this.refresh();
      const w = this.queue[0]!;
      const bucket = this.bucket;
      if (bucket === null) {
        this.grant(w, w.remaining);
        continue;
      }
      const piece = Math.min(w.remaining, bucket.capacity);
      const t = this.clock.monotonic();
      const wait = bucket.delay(piece, t);
      if (wait > 0) {
        if (!w.slept) {
          w.slept = true;
          this.stats.waited++;
        }
        const change = msUntilChange(this.limit, this.clock.now());
        const ms = Math.max(1, Math.min(wait, change === null ? Infinity : change + 1, MAX_SLEEP_MS));
        this.cancelTimer = this.clock.setTimer(() => {
          this.cancelTimer = null;
          this.pump();
        }, ms);
        return;
      }
      bucket.take(piece, t);
      this.grant(w, piece);
    }
  }

  private grant(w: Waiter, n: number): void {
    w.remaining -= n;
    this.stats.granted += n;
    if (w.remaining > 0) return;
    this.queue.shift();
    if (w.signal && w.onAbort) w.signal.removeEventListener('abort', w.onAbort);
    w.resolve();
  }
}

function abortReason(signal: AbortSignal): unknown {
  return signal.reason instanceof Error ? signal.reason : new AbortError('transfer stopped', { cause: signal.reason });
}

/** The limiter of a run, or undefined when the limit never limits (absent, `off`, or every window off). */
export function limiterFor(limit: BandwidthLimit | undefined, clock: LimiterClock): BandwidthLimiter | undefined {
  return limit === undefined || isUnlimited(limit) ? undefined : new BandwidthLimiter(limit, clock);
}
