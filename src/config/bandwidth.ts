/**
 * Bandwidth limits as users write them (`--limit-upload`, `--limit-download`,
 * `[upload] limit`, `[restore] limit`): a rate, `off`, or a time-of-day
 * schedule of rates. Pure: parsing, validation, the rate in force at a local
 * time and when it next changes. The token bucket that applies a limit is
 * src/pipeline/bandwidth.ts.
 *
 * Syntax:
 *   - a rate: a number of bytes per second with an optional unit and an
 *     optional `/s`: `2MiB/s`, `500KiB/s`, `2MB/s`, `1.5 MiB/s`, `65536`.
 *     Units are binary whatever their spelling (KB = KiB = 1024 bytes, as
 *     `part_size` reads them; parsed with the `bytes` package); at least
 *     1 KiB/s;
 *   - `off` (also `none`, `unlimited`): no limit;
 *   - a schedule: comma-separated windows `HH:MM-HH:MM=RATE` in the
 *     machine's local time, e.g. `08:00-23:00=2MiB/s, 23:00-08:00=off`. A
 *     window runs from its start (inclusive) to its end (exclusive) and may
 *     wrap past midnight; `24:00` is accepted as an end. Together the windows
 *     must cover the whole day exactly once: no gap, no overlap.
 */
import bytes from 'bytes';

/** Bytes per second, or null: no limit. */
export type Rate = number | null;

/** One window of a schedule, in minutes of the local day. */
export interface BandwidthWindow {
  /** 0–1439, inclusive. */
  start: number;
  /** 0–1440, exclusive, as written; at or below `start` when the window wraps past midnight. */
  end: number;
  rate: Rate;
}

/** A parsed limit: one all-day window for a plain rate or `off`, else the schedule's windows in the order written. */
export interface BandwidthLimit {
  /** As written (trimmed), for messages. */
  text: string;
  windows: BandwidthWindow[];
}

export const KiB = 1024;
const MINUTES_PER_DAY = 24 * 60;
/** The smallest limit accepted: below it a 64 KiB request would idle for over a minute (stores drop idle connections). */
export const MIN_RATE = KiB;

/** A limit that cannot be parsed; `message` is one line naming what is wrong (never the whole value when it is long). */
export class BandwidthSyntaxError extends Error {
  override name = 'BandwidthSyntaxError';
}

const OFF_WORDS = new Set(['off', 'none', 'unlimited']);

/** `2MiB/s` → 2097152; `off` → null. @throws BandwidthSyntaxError */
export function parseRate(text: string): Rate {
  const t = text.trim();
  if (OFF_WORDS.has(t.toLowerCase())) return null;
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]i?b?|b)?\s*(?:\/\s*s(?:ec)?)?$/i.exec(t);
  if (!m) throw new BandwidthSyntaxError(`not a rate: ${JSON.stringify(t)} (write e.g. "2MiB/s", "500KiB/s" or "off")`);
  // `bytes` reads KB/MB/GB as binary multiples: give it those spellings.
  const unit = (m[2] ?? 'b').toLowerCase().replace(/i?b?$/, '');
  const n = bytes.parse(`${m[1]!}${unit === '' ? 'b' : `${unit}b`}`);
  if (n === null || !Number.isFinite(n)) throw new BandwidthSyntaxError(`not a rate: ${JSON.stringify(t)} (write e.g. "2MiB/s", "500KiB/s" or "off")`);
  if (n < MIN_RATE) throw new BandwidthSyntaxError(`${JSON.stringify(t)} is below the smallest limit, 1KiB/s (write "off" for no limit)`);
  return Math.floor(n);
}

/** `08:00` → 480; `24:00` only where `allow24`. */
function parseTime(text: string, allow24: boolean, window: string): number {
  const m = /^(\d{1,2}):(\d{2})$/.exec(text.trim());
  const h = m ? Number(m[1]) : NaN;
  const min = m ? Number(m[2]) : NaN;
  const ok = m !== null && min < 60 && (h < 24 || (allow24 && h === 24 && min === 0));
  if (!ok) throw new BandwidthSyntaxError(`window ${JSON.stringify(window)}: ${JSON.stringify(text.trim())} is not a time of day (write HH:MM, 00:00 to ${allow24 ? '24:00' : '23:59'})`);
  return h * 60 + min;
}

/** 480 → `08:00`. */
export function formatMinute(m: number): string {
  return `${String(Math.floor(m / 60)).padStart(2, '0')}:${String(m % 60).padStart(2, '0')}`;
}

function windowText(w: BandwidthWindow): string {
  return `${formatMinute(w.start)}-${formatMinute(w.end)}`;
}

/** Minutes in `w` (1–1440). */
function windowLength(w: BandwidthWindow): number {
  return w.end > w.start ? w.end - w.start : w.end + MINUTES_PER_DAY - w.start;
}

/**
 * Parse a rate, `off` or a schedule.
 * @throws BandwidthSyntaxError with a one-line reason: a bad rate or time, an
 *   empty window, two windows that overlap, or a part of the day no window covers.
 */
export function parseBandwidth(text: string): BandwidthLimit {
  const t = text.trim();
  if (t === '') throw new BandwidthSyntaxError('empty limit (write e.g. "2MiB/s", "off" or "08:00-23:00=2MiB/s, 23:00-08:00=off")');
  if (!t.includes('=')) return { text: t, windows: [{ start: 0, end: MINUTES_PER_DAY, rate: parseRate(t) }] };
  const windows: BandwidthWindow[] = [];
  for (const raw of t.split(',')) {
    const item = raw.trim();
    if (item === '') throw new BandwidthSyntaxError('empty window in the schedule (a stray comma?)');
    const m = /^([^-=]+)-([^=]+)=(.+)$/.exec(item);
    if (!m) throw new BandwidthSyntaxError(`window ${JSON.stringify(item)} is not HH:MM-HH:MM=RATE (e.g. "08:00-23:00=2MiB/s")`);
    const start = parseTime(m[1]!, false, item);
    const end = parseTime(m[2]!, true, item);
    if (start === end) throw new BandwidthSyntaxError(`window ${JSON.stringify(item)} is empty (start and end are the same; for the whole day write the rate alone)`);
    let rate: Rate;
    try {
      rate = parseRate(m[3]!);
    } catch (err) {
      throw new BandwidthSyntaxError(`window ${JSON.stringify(item)}: ${(err as Error).message}`);
    }
    windows.push({ start, end, rate });
  }
  // Every minute of the day belongs to exactly one window.
  const owner = new Array<number>(MINUTES_PER_DAY).fill(-1);
  windows.forEach((w, i) => {
    for (let k = 0; k < windowLength(w); k++) {
      const m = (w.start + k) % MINUTES_PER_DAY;
      const other = owner[m]!;
      if (other >= 0) {
        throw new BandwidthSyntaxError(`windows ${windowText(windows[other]!)} and ${windowText(w)} overlap (at ${formatMinute(m)}): each time of day must have one rate`);
      }
      owner[m] = i;
    }
  });
  const gap = owner.indexOf(-1);
  if (gap >= 0) {
    let end = gap;
    while (end < MINUTES_PER_DAY && owner[end] === -1) end++;
    throw new BandwidthSyntaxError(`the schedule leaves ${formatMinute(gap)}-${formatMinute(end)} without a rate: the windows must cover the whole day (use "off" for no limit)`);
  }
  return { text: t, windows };
}

function minuteOfDay(at: Date): number {
  return at.getHours() * 60 + at.getMinutes();
}

function contains(w: BandwidthWindow, minute: number): boolean {
  return (minute - w.start + MINUTES_PER_DAY) % MINUTES_PER_DAY < windowLength(w);
}

/** The rate in force at `at`, by the local time of day. */
export function rateAt(limit: BandwidthLimit, at: Date): Rate {
  const minute = minuteOfDay(at);
  const w = limit.windows.find((x) => contains(x, minute));
  // parseBandwidth guarantees a window for every minute; a hand-made limit without one is no limit.
  return w ? w.rate : null;
}

/**
 * Milliseconds from `at` until the next window starts (the earliest moment
 * the rate may change), or null when one window covers the whole day.
 * Computed from the local time of day; across a daylight-saving change it
 * may be off by the shift, so callers re-evaluate `rateAt` when they wake.
 */
export function msUntilChange(limit: BandwidthLimit, at: Date): number | null {
  if (limit.windows.length < 2) return null;
  const now = minuteOfDay(at);
  let best = Infinity;
  for (const w of limit.windows) {
    const ahead = (w.start - now + MINUTES_PER_DAY) % MINUTES_PER_DAY || MINUTES_PER_DAY;
    best = Math.min(best, ahead);
  }
  return best * 60_000 - (at.getSeconds() * 1000 + at.getMilliseconds());
}

/** True when the limit never limits (`off`, or every window off). */
export function isUnlimited(limit: BandwidthLimit | undefined): boolean {
  return limit === undefined || limit.windows.every((w) => w.rate === null);
}

/** 2097152 → `2 MiB/s`; null → `off`. */
export function formatRate(rate: Rate): string {
  if (rate === null) return 'off';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = rate;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${Number(v.toFixed(2))} ${units[u]!}/s`;
}

/** `2 MiB/s`, or `08:00-23:00 2 MiB/s, 23:00-08:00 off`. */
export function describeBandwidth(limit: BandwidthLimit): string {
  if (limit.windows.length === 1) return formatRate(limit.windows[0]!.rate);
  return limit.windows.map((w) => `${windowText(w)} ${formatRate(w.rate)}`).join(', ');
}
