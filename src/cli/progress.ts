/**
 * Progress bar for long work (push, restore downloads): bytes, rate, ETA,
 * volume/part. Drawn on stderr only when it is a TTY and not in --json mode;
 * silent otherwise, so cron and systemd logs stay clean.
 */
import { formatBytes } from './format.js';
import cliProgress from 'cli-progress';

export interface ProgressSink {
  start(label: string, totalBytes: number | null): void;
  update(doneBytes: number, detail: string): void;
  stop(): void;
}

const silent: ProgressSink = { start() {}, update() {}, stop() {} };

function fmt(n: number): string {
  return formatBytes(n);
}

export function progressBar(enabled: boolean): ProgressSink {
  if (!enabled || !process.stderr.isTTY) return silent;
  let bar: cliProgress.SingleBar | null = null;
  let started = 0;
  return {
    start(label, totalBytes) {
      started = Date.now();
      bar = new cliProgress.SingleBar(
        {
          stream: process.stderr,
          format: `${label} {bar} {done}/{total} {rate}/s ETA {eta_formatted} {detail}`,
          hideCursor: true,
          etaBuffer: 50,
          fps: 5,
        },
        cliProgress.Presets.shades_classic,
      );
      const total = totalBytes && totalBytes > 0 ? totalBytes : 1;
      bar.start(total, 0, { done: fmt(0), total: totalBytes ? fmt(totalBytes) : '?', rate: fmt(0), detail: '' });
    },
    update(doneBytes, detail) {
      if (!bar) return;
      const secs = Math.max((Date.now() - started) / 1000, 0.001);
      if (doneBytes > bar.getTotal()) bar.setTotal(doneBytes);
      bar.update(doneBytes, { done: fmt(doneBytes), rate: fmt(doneBytes / secs), detail });
    },
    stop() {
      bar?.stop();
      bar = null;
    },
  };
}
