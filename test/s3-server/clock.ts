/**
 * A controllable clock. All time-dependent S3 behaviour (restore completion,
 * restored-copy expiry, per-month egress accounting, LastModified) reads it,
 * so tests advance time instead of sleeping.
 */
export class TestClock {
  /** Fixed offset from real time, in ms, applied while following real time. */
  private offset = 0;
  /** Once set/advance is used, the clock stops following real time. */
  private frozenAt: number | undefined;

  /** @param start when given, the clock is frozen at this instant. */
  constructor(start?: Date) {
    if (start !== undefined) this.frozenAt = start.getTime();
  }

  /** Current instant according to the clock. */
  now(): Date {
    return new Date(this.nowMs());
  }

  /** Current instant in epoch milliseconds. */
  nowMs(): number {
    return this.frozenAt ?? Date.now() + this.offset;
  }

  /**
   * Move time forward by `ms`. Freezes the clock: afterwards it only moves
   * through `advance`/`set`, which keeps multi-step tests deterministic.
   */
  advance(ms: number): void {
    if (!Number.isFinite(ms) || ms < 0) throw new RangeError(`advance: bad duration ${ms}`);
    this.frozenAt = this.nowMs() + ms;
  }

  /** Jump to `d` (and freeze there). */
  set(d: Date): void {
    this.frozenAt = d.getTime();
  }
}
