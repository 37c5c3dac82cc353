/**
 * Progress as log lines, for runs outside a terminal (systemd, cron, pipes,
 * --json): where the bar of ./progress.ts would be noise, `journalctl -u
 * zbk-push` still shows a push is alive. Driven by the same callbacks as
 * the bar, with no clock or output of its own: `now()` and `write(line)`
 * are injected, so tests drive it with a fake clock.
 *
 * - A stream (a push's stream to a snapshot, a restore's volume download)
 *   begins, reports progress and ends. A progress line is written when a
 *   report arrives and at least `intervalSeconds` have passed since the
 *   last line; a line when the stream ends (`finished`), or `stopped` when
 *   another stream begins or the run ends before it did (a failed push).
 * - A line carries: bytes done, the total (exact, or "about" for an
 *   estimate such as `zfs send -nP`'s) and percentage when known, the rate
 *   since the last progress line and since the stream began, the ETA when a
 *   total is known (what remains at the overall rate), and the detail
 *   (volume/part).
 * - Nothing reported: `tick()` (called by an unref'd timer, so it never
 *   keeps the process alive) writes a "nothing reported for …" line once no
 *   report arrived and no line was written for `intervalSeconds` (a push
 *   waiting for the manifest lock, a part that takes long on a slow
 *   uplink, `restore run --wait` waiting for a thaw). Such lines then come
 *   at doubling gaps, up to 15 minutes (never below the interval), so a
 *   48-hour thaw writes some 200 lines, not 3,000; a report resets the gap.
 * - `intervalSeconds` 0: never a line.
 */
import { formatBytes } from './format.js';

export interface ProgressLogOptions {
  /** Seconds between lines; 0 writes none. */
  intervalSeconds: number;
  /** Milliseconds, as Date.now(). */
  now: () => number;
  /** One line, without its newline. */
  write: (line: string) => void;
  /** The run, for lines with no stream open ("zbk push"). */
  what: string;
}

export interface StreamStart {
  /** Names the stream: a report with another id ends this one. */
  id: string;
  /** What the lines call it: `tank/photos@snap`, `tank/photos@snap volume 2`. */
  label: string;
  totalBytes: number | null;
  /** The total is an estimate (`zfs send -nP`), not the exact size. */
  estimate?: boolean;
}

export interface StreamReport extends StreamStart {
  /** Bytes done so far in this stream (cumulative). */
  doneBytes: number;
  /**
   * Of those, the bytes this run moved (rates and ETA use these), when some
   * were done without moving (verified on disk from an earlier run).
   * Default: `doneBytes`.
   */
  movedBytes?: number;
  /** "volume 0 part 3". */
  detail: string;
}

/** The most a "nothing reported" line waits for the next once the gaps have doubled. */
const MAX_IDLE_GAP_MS = 15 * 60_000;

interface OpenStream {
  id: string;
  label: string;
  totalBytes: number | null;
  estimate: boolean;
  startedAt: number;
  done: number;
  moved: number;
  /** `moved` and the time at the last progress line (or the start): the interval's rate. */
  lineMoved: number;
  lineAt: number;
  detail: string;
}

/** "1.4s", "42s", "4m 30s", "3h 5m", "2d 3h". */
export function formatDuration(seconds: number): string {
  if (seconds < 9.95) return `${Math.max(0, Math.round(seconds * 10) / 10)}s`;
  const s = Math.round(seconds);
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  if (d > 0) return `${d}d ${h}h`;
  if (h > 0) return `${h}h ${m}m`;
  if (m > 0) return sec > 0 ? `${m}m ${sec}s` : `${m}m`;
  return `${sec}s`;
}

/** "12.35 MB/s". */
export function formatRate(bytesPerSecond: number): string {
  return `${formatBytes(Math.max(0, bytesPerSecond))}/s`;
}

export class ProgressLog {
  private open: OpenStream | null = null;
  /** When the last line of any kind was written. */
  private lastLineAt: number;
  /** When the last report (or begin/end) arrived. */
  private lastReportAt: number;
  private idleGapMs: number;
  private readonly intervalMs: number;

  constructor(private readonly opts: ProgressLogOptions) {
    this.intervalMs = Math.max(0, opts.intervalSeconds) * 1000;
    this.lastLineAt = opts.now();
    this.lastReportAt = this.lastLineAt;
    this.idleGapMs = this.intervalMs;
  }

  get enabled(): boolean {
    return this.intervalMs > 0;
  }

  /** A stream begins (before its first report: its rates count from here). The same id again is a no-op. */
  begin(s: StreamStart): void {
    if (!this.enabled) return;
    if (this.open?.id === s.id) return;
    const now = this.opts.now();
    if (this.open) this.stopOpen(now);
    this.open = { id: s.id, label: s.label, totalBytes: s.totalBytes, estimate: s.estimate ?? false, startedAt: now, done: 0, moved: 0, lineMoved: 0, lineAt: now, detail: '' };
    this.reported(now);
  }

  /** Progress of a stream (begun implicitly, at this report, if `begin` was not called). */
  update(r: StreamReport): void {
    if (!this.enabled) return;
    if (this.open?.id !== r.id) this.begin(r);
    const s = this.open!;
    const now = this.opts.now();
    s.label = r.label;
    s.totalBytes = r.totalBytes;
    s.estimate = r.estimate ?? false;
    s.done = r.doneBytes;
    s.moved = r.movedBytes ?? r.doneBytes;
    s.detail = r.detail;
    this.reported(now);
    if (now - this.lastLineAt >= this.intervalMs) {
      this.line(now, this.progressText(s, now));
      s.lineMoved = s.moved;
      s.lineAt = now;
    }
  }

  /** The stream finished (all its bytes are stored): its last line. `doneBytes`: the exact size, when known only now. */
  end(id: string, doneBytes?: number): void {
    if (!this.enabled || this.open?.id !== id) return;
    const s = this.open;
    const now = this.opts.now();
    if (doneBytes !== undefined) {
      s.moved += Math.max(0, doneBytes - s.done);
      s.done = doneBytes;
    }
    this.open = null;
    this.reported(now);
    const secs = (now - s.startedAt) / 1000;
    this.line(now, `progress ${s.label}: finished: ${formatBytes(s.done)} in ${formatDuration(secs)}, ${formatRate(rate(s.moved, secs))} overall`);
  }

  /** Called by a timer (any period up to the interval): the "nothing reported" line, when due. */
  tick(): void {
    if (!this.enabled) return;
    const now = this.opts.now();
    if (now - this.lastReportAt < this.intervalMs || now - this.lastLineAt < this.idleGapMs) return;
    const quiet = formatDuration((now - this.lastReportAt) / 1000);
    const s = this.open;
    if (s) {
      const total = s.totalBytes !== null && s.done < s.totalBytes ? ` of ${s.estimate ? 'about ' : ''}${formatBytes(s.totalBytes)}` : '';
      const secs = (now - s.startedAt) / 1000;
      this.line(now, `progress ${s.label}: nothing reported for ${quiet}; ${formatBytes(s.done)}${total} so far, ${formatRate(rate(s.moved, secs))} overall${s.detail ? `, ${s.detail}` : ''}`);
    } else {
      this.line(now, `progress: ${this.opts.what} still running, no bytes moved for ${quiet}`);
    }
    this.idleGapMs = Math.min(this.idleGapMs * 2, Math.max(MAX_IDLE_GAP_MS, this.intervalMs));
  }

  /** The run ends: a stream still open did not finish. */
  close(): void {
    if (!this.enabled || !this.open) return;
    this.stopOpen(this.opts.now());
  }

  private stopOpen(now: number): void {
    const s = this.open!;
    this.open = null;
    const secs = (now - s.startedAt) / 1000;
    this.line(now, `progress ${s.label}: stopped at ${formatBytes(s.done)} after ${formatDuration(secs)}, ${formatRate(rate(s.moved, secs))} overall`);
  }

  private reported(now: number): void {
    this.lastReportAt = now;
    this.idleGapMs = this.intervalMs;
  }

  private line(now: number, text: string): void {
    this.lastLineAt = now;
    this.opts.write(text);
  }

  private progressText(s: OpenStream, now: number): string {
    const secs = (now - s.startedAt) / 1000;
    const overall = rate(s.moved, secs);
    const sinceLine = (now - s.lineAt) / 1000;
    const parts: string[] = [];
    let done = formatBytes(s.done);
    let eta: string | null = null;
    if (s.totalBytes !== null && s.totalBytes > 0) {
      if (s.done < s.totalBytes) {
        done += ` of ${s.estimate ? 'about ' : ''}${formatBytes(s.totalBytes)} (${Math.floor((s.done / s.totalBytes) * 100)}%)`;
        const left = etaSeconds(s.totalBytes - s.done, overall);
        if (left !== null) eta = `ETA ${formatDuration(left)}`;
      } else if (s.estimate) done += ` (more than the estimated ${formatBytes(s.totalBytes)})`;
    }
    parts.push(`${done} after ${formatDuration(secs)}`);
    parts.push(`${formatRate(rate(s.moved - s.lineMoved, sinceLine))} over the last ${formatDuration(sinceLine)}`);
    parts.push(`${formatRate(overall)} overall`);
    if (eta) parts.push(eta);
    if (s.detail) parts.push(s.detail);
    return `progress ${s.label}: ${parts.join(', ')}`;
  }
}

function rate(bytes: number, seconds: number): number {
  return seconds > 0 ? bytes / seconds : 0;
}

/** Seconds to move `remaining` bytes at `bytesPerSecond`; null when nothing moves. */
export function etaSeconds(remaining: number, bytesPerSecond: number): number | null {
  if (remaining <= 0) return 0;
  if (!(bytesPerSecond > 0)) return null;
  return remaining / bytesPerSecond;
}
