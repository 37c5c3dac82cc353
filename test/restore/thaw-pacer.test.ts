/** The pace of RestoreObject requests (src/services/restore/thaw-pacer.ts), on an injected clock. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RequestPacer, THAW_BURST, THAW_CONCURRENCY, THAW_REQUESTS_PER_SECOND } from '../../src/services/restore/thaw-pacer.js';

/** A clock whose timers fire only when the test moves it. */
function fakeClock(): { monotonic(): number; setTimer(fn: () => void, ms: number): () => void; advance(ms: number): Promise<void> } {
  let t = 0;
  let timers: { at: number; fn: () => void }[] = [];
  return {
    monotonic: () => t,
    setTimer(fn, ms) {
      const timer = { at: t + ms, fn };
      timers.push(timer);
      return () => {
        timers = timers.filter((x) => x !== timer);
      };
    },
    async advance(ms) {
      const end = t + ms;
      for (;;) {
        await new Promise((r) => setImmediate(r));
        const due = timers.filter((x) => x.at <= end).sort((a, b) => a.at - b.at)[0];
        if (!due) break;
        timers = timers.filter((x) => x !== due);
        t = due.at;
        due.fn();
      }
      t = end;
      await new Promise((r) => setImmediate(r));
    },
  };
}

describe('RequestPacer', () => {
  it('the limits stay within AWS’s 1,000 restore requests per second', () => {
    assert.ok(THAW_REQUESTS_PER_SECOND + THAW_BURST <= 1000);
    assert.ok(THAW_CONCURRENCY >= 1 && THAW_CONCURRENCY <= THAW_BURST);
  });

  it('starts a burst at once, then no more than `rate` a second', async () => {
    const clock = fakeClock();
    const pacer = new RequestPacer({ rate: 100, burst: 10, concurrency: 1000, clock });
    const startedAt: number[] = [];
    const all = Promise.all(Array.from({ length: 60 }, () => pacer.run(async () => void startedAt.push(clock.monotonic()))));
    await clock.advance(0);
    assert.equal(startedAt.length, 10, 'the burst');
    await clock.advance(100);
    assert.equal(startedAt.length, 20, '10 more in 100 ms at 100/s');
    await clock.advance(400);
    await all;
    assert.equal(startedAt.length, 60);
    // In any window of T ms at most rate × T / 1000 + burst started.
    for (const from of startedAt) {
      const n = startedAt.filter((x) => x >= from && x < from + 250).length;
      assert.ok(n <= 25 + 10, `${n} started in 250 ms from ${from}`);
    }
    assert.equal(pacer.stats.started, 60);
    assert.ok(pacer.stats.waited > 0);
  });

  it('keeps at most `concurrency` in flight; a failure frees its slot and is its caller’s', async () => {
    const clock = fakeClock();
    const pacer = new RequestPacer({ rate: 1e6, burst: 1000, concurrency: 3, clock });
    let inFlight = 0;
    let most = 0;
    const release: (() => void)[] = [];
    const task = (fail: boolean) => () =>
      new Promise<string>((resolve, reject) => {
        inFlight++;
        most = Math.max(most, inFlight);
        release.push(() => {
          inFlight--;
          if (fail) reject(new Error('boom'));
          else resolve('ok');
        });
      });
    const results = Array.from({ length: 10 }, (_, i) => pacer.run(task(i === 1)).then((v) => v, (e: Error) => e.message));
    for (let i = 0; i < 10; i++) {
      await clock.advance(0);
      assert.ok(inFlight <= 3);
      release.shift()?.();
    }
    await clock.advance(0);
    while (release.length > 0) {
      release.shift()!();
      await clock.advance(0);
    }
    const out = await Promise.all(results);
    assert.equal(most, 3);
    assert.equal(out.filter((x) => x === 'boom').length, 1);
    assert.equal(out.filter((x) => x === 'ok').length, 9);
    assert.equal(pacer.pending, 0);
  });
});
