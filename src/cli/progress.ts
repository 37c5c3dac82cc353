/**
 * Progress of long work (push, restore downloads): bytes, rate, ETA,
 * volume/part, always on stderr (stdout carries --json).
 *
 * - At a terminal (stderr a TTY) and without --json: a bar, redrawn in
 *   place, with human sizes ("33.55 MB/134.22 MB").
 * - Otherwise (systemd, cron, a pipe, or --json): a line every
 *   `--progress-interval` seconds (default 60; 0 = none) and one when a
 *   stream ends, see ./progress-log.ts, so the journal shows the run is
 *   alive. A timer, unref'd, writes a line when nothing was reported for
 *   an interval (a push waiting for the lock, a restore waiting for a thaw).
 */
import { Flags } from '@oclif/core';
import cliProgress from 'cli-progress';
import { formatBytes } from './format.js';
import { ProgressLog, type StreamReport, type StreamStart } from './progress-log.js';

export interface ProgressSink {
  start(label: string, totalBytes: number | null): void;
  update(doneBytes: number, detail: string): void;
  stop(): void;
}

const silent: ProgressSink = { start() {}, update() {}, stop() {} };

export const DEFAULT_PROGRESS_INTERVAL = 60;

export const progressIntervalFlag = Flags.integer({
  description: `Outside a terminal (systemd, cron, a pipe) or with --json: write a progress line to stderr every SECONDS (bytes, total, rate, ETA, volume/part; and one when each stream, or restored volume, ends), so the journal shows the run is alive; 0 writes none. At a terminal a progress bar is drawn instead.`,
  helpValue: 'SECONDS',
  default: DEFAULT_PROGRESS_INTERVAL,
  min: 0,
});

/**
 * The terminal bar, on `stream` (stderr) when it is a TTY and `enabled`.
 * Sizes and rate are human; the total is shown as such ("?" when unknown,
 * then no ETA).
 */
export function progressBar(enabled: boolean, stream: NodeJS.WriteStream = process.stderr): ProgressSink {
  if (!enabled || !stream.isTTY) return silent;
  let bar: cliProgress.SingleBar | null = null;
  let started = 0;
  let known = false;
  return {
    start(label, totalBytes) {
      bar?.stop();
      started = Date.now();
      const total = totalBytes !== null && totalBytes > 0 ? totalBytes : null;
      known = total !== null;
      // Payload keys that are not cli-progress's own: its {total} and {value} are the raw byte counts.
      bar = new cliProgress.SingleBar(
        {
          stream,
          format: `{label} {bar} {doneText}/{totalText} {rateText}${known ? ' ETA {eta_formatted}' : ''} {detail}`,
          hideCursor: true,
          etaBuffer: 50,
          fps: 5,
        },
        cliProgress.Presets.shades_classic,
      );
      bar.start(total ?? 1, 0, { label, doneText: formatBytes(0), totalText: total !== null ? formatBytes(total) : '?', rateText: `${formatBytes(0)}/s`, detail: '' });
    },
    update(doneBytes, detail) {
      if (!bar) return;
      const secs = Math.max((Date.now() - started) / 1000, 0.001);
      // Past the estimate (or no total known): the bar is full, the total what is done.
      const past = doneBytes > bar.getTotal();
      if (past) bar.setTotal(doneBytes);
      bar.update(doneBytes, { doneText: formatBytes(doneBytes), rateText: `${formatBytes(doneBytes / secs)}/s`, detail, ...(past && known ? { totalText: formatBytes(doneBytes) } : {}) });
    },
    stop() {
      bar?.stop();
      bar = null;
    },
  };
}

/** What the commands report to: streams beginning, progressing and ending. */
export interface ProgressReporter {
  begin(s: StreamStart): void;
  update(r: StreamReport): void;
  end(id: string, doneBytes?: number): void;
  /** Something else is about to be printed at the terminal: the bar is taken down (the next report draws it again). */
  pause(): void;
  /** The run is over (also on failure): the bar taken down, a stream still open logged as stopped, the timer cleared. */
  close(): void;
}

export interface ProgressReporterOptions {
  /** --json: never a bar. */
  json: boolean;
  /** --progress-interval, seconds. */
  intervalSeconds: number;
  /** "zbk push", for lines with no stream open. */
  what: string;
  stderr?: NodeJS.WriteStream;
}

/** The bar at a terminal without --json; else progress lines (none with interval 0). */
export function progressReporter(opts: ProgressReporterOptions): ProgressReporter {
  const stderr = opts.stderr ?? process.stderr;
  if (!opts.json && stderr.isTTY) return barReporter(progressBar(true, stderr));
  const log = new ProgressLog({ intervalSeconds: opts.intervalSeconds, now: () => Date.now(), write: (line) => void stderr.write(`${line}\n`), what: opts.what });
  if (!log.enabled) return { begin() {}, update() {}, end() {}, pause() {}, close() {} };
  // Checks each second whether a "nothing reported" line is due; never keeps the process alive.
  const timer = setInterval(() => log.tick(), Math.min(1000, opts.intervalSeconds * 1000));
  timer.unref();
  return {
    begin: (s) => log.begin(s),
    update: (r) => log.update(r),
    end: (id, doneBytes) => log.end(id, doneBytes),
    pause() {},
    close() {
      clearInterval(timer);
      log.close();
    },
  };
}

function barReporter(bar: ProgressSink): ProgressReporter {
  let current: string | null = null;
  const start = (s: StreamStart): void => {
    current = s.id;
    bar.start(s.label, s.totalBytes);
  };
  return {
    begin(s) {
      if (current !== s.id) start(s);
    },
    update(r) {
      if (current !== r.id) start(r);
      bar.update(r.doneBytes, r.detail);
    },
    end(id) {
      if (current !== id) return;
      bar.stop();
      current = null;
    },
    pause() {
      bar.stop();
      current = null;
    },
    close() {
      bar.stop();
      current = null;
    },
  };
}
