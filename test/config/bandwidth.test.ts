/**
 * Bandwidth limits as written (src/config/bandwidth.ts): rates, `off`,
 * time-of-day schedules that must cover the day without overlap, the rate in
 * force at a local time and when it next changes; and their place in the
 * strict config (`[upload] limit`, `[restore] limit`: file:line, key, exit 3).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import {
  BandwidthSyntaxError,
  describeBandwidth,
  formatRate,
  isUnlimited,
  msUntilChange,
  parseBandwidth,
  parseRate,
  rateAt,
} from '../../src/config/bandwidth.js';
import { configFromObject, loadConfig } from '../../src/config/config.js';
import { applyLimit, parseLimitFlag } from '../../src/cli/limit-flags.js';
import { ConfigError, ExitCode, UsageError } from '../../src/errors.js';

const KiB = 1024;
const MiB = 1024 * KiB;
/** A local time today (the schedule reads local time). */
const at = (h: number, m = 0, s = 0, ms = 0): Date => new Date(2026, 5, 15, h, m, s, ms);

test('rates: binary units whatever the spelling, optional /s, off', () => {
  assert.equal(parseRate('2MiB/s'), 2 * MiB);
  assert.equal(parseRate('500KiB/s'), 500 * KiB);
  assert.equal(parseRate('2MB/s'), 2 * MiB);
  assert.equal(parseRate('2M'), 2 * MiB);
  assert.equal(parseRate('2 MiB / s'), 2 * MiB);
  assert.equal(parseRate('1.5MiB/s'), 1.5 * MiB);
  assert.equal(parseRate('1GiB/sec'), 1024 * MiB);
  assert.equal(parseRate('65536'), 65536);
  assert.equal(parseRate('4096B/s'), 4096);
  assert.equal(parseRate('off'), null);
  assert.equal(parseRate('OFF'), null);
  assert.equal(parseRate('unlimited'), null);
});

test('rates: nonsense, zero, negatives and limits below 1KiB/s are refused with the value named', () => {
  for (const bad of ['', 'fast', '2 MiB per second', '-1MiB/s', '2XB/s', '2MiB/min', '0', '0KiB/s', '512', '0.5KiB/s', '1e6']) {
    assert.throws(() => parseRate(bad), (e: unknown) => e instanceof BandwidthSyntaxError && !e.message.includes('\n'), bad);
  }
  assert.throws(() => parseRate('512'), /below the smallest limit, 1KiB\/s/);
  assert.throws(() => parseRate('fast'), /not a rate: "fast"/);
});

test('a plain rate or off is one window for the whole day', () => {
  const l = parseBandwidth(' 2MiB/s ');
  assert.deepEqual(l, { text: '2MiB/s', windows: [{ start: 0, end: 1440, rate: 2 * MiB }] });
  assert.equal(rateAt(l, at(3)), 2 * MiB);
  assert.equal(msUntilChange(l, at(3)), null);
  assert.equal(isUnlimited(l), false);
  assert.equal(isUnlimited(parseBandwidth('off')), true);
  assert.equal(isUnlimited(undefined), true);
  assert.equal(describeBandwidth(l), '2 MiB/s');
});

test('schedule: windows by local time, wrapping past midnight; the rate at each minute and the time to the next boundary', () => {
  const l = parseBandwidth('08:00-23:00=2MiB/s, 23:00-08:00=off');
  assert.equal(l.windows.length, 2);
  assert.equal(rateAt(l, at(8)), 2 * MiB, 'a window starts at its start');
  assert.equal(rateAt(l, at(22, 59, 59, 999)), 2 * MiB);
  assert.equal(rateAt(l, at(23)), null, 'and ends before its end');
  assert.equal(rateAt(l, at(0)), null);
  assert.equal(rateAt(l, at(7, 59)), null);
  assert.equal(msUntilChange(l, at(22, 59, 59, 500)), 500);
  assert.equal(msUntilChange(l, at(23)), 9 * 3600_000, 'from 23:00 the next boundary is 08:00');
  assert.equal(msUntilChange(l, at(7, 0, 30)), 59 * 60_000 + 30_000);
  assert.equal(isUnlimited(l), false);
  assert.equal(describeBandwidth(l), '08:00-23:00 2 MiB/s, 23:00-08:00 off');

  const three = parseBandwidth('00:00-06:00=off,06:00-18:00=512KiB/s,18:00-24:00=4MiB/s');
  assert.equal(rateAt(three, at(5, 59)), null);
  assert.equal(rateAt(three, at(6)), 512 * KiB);
  assert.equal(rateAt(three, at(18)), 4 * MiB);
  assert.equal(rateAt(three, at(23, 59, 59)), 4 * MiB);
  assert.equal(msUntilChange(three, at(23, 59, 59)), 1000, 'the day wraps to the 00:00 window');
  assert.equal(parseBandwidth('00:00-24:00=1MiB/s').windows.length, 1);
  assert.equal(isUnlimited(parseBandwidth('08:00-20:00=off, 20:00-08:00=off')), true);
});

test('schedule: gaps, overlaps, empty windows and bad times are refused, each in one line naming the windows', () => {
  const refused = (text: string, pattern: RegExp): void => {
    assert.throws(() => parseBandwidth(text), (e: unknown) => e instanceof BandwidthSyntaxError && pattern.test(e.message) && !e.message.includes('\n'), text);
  };
  refused('08:00-23:00=2MiB/s', /leaves 00:00-08:00 without a rate: the windows must cover the whole day/);
  refused('08:00-23:00=2MiB/s, 23:30-08:00=off', /leaves 23:00-23:30 without a rate/);
  refused('08:00-23:00=2MiB/s, 22:00-08:00=off', /windows 08:00-23:00 and 22:00-08:00 overlap \(at 22:00\)/);
  refused('00:00-24:00=2MiB/s, 10:00-11:00=off', /overlap/);
  refused('08:00-08:00=2MiB/s', /is empty/);
  refused('8-23=2MiB/s, 23-8=off', /"8" is not a time of day/);
  refused('08:00-25:00=2MiB/s, 01:00-08:00=off', /"25:00" is not a time of day/);
  refused('24:00-08:00=2MiB/s, 08:00-24:00=off', /"24:00" is not a time of day/);
  refused('08:61-23:00=2MiB/s, 23:00-08:61=off', /"08:61" is not a time of day/);
  refused('08:00-23:00=fast, 23:00-08:00=off', /window "08:00-23:00=fast": not a rate: "fast"/);
  refused('08:00-23:00=2MiB/s,, 23:00-08:00=off', /empty window/);
  refused('08:00=2MiB/s', /is not HH:MM-HH:MM=RATE/);
  refused('  ', /empty limit/);
});

test('formatRate reads back in binary units', () => {
  assert.equal(formatRate(null), 'off');
  assert.equal(formatRate(4 * MiB), '4 MiB/s');
  assert.equal(formatRate(1536 * KiB), '1.5 MiB/s');
  assert.equal(formatRate(500 * KiB), '500 KiB/s');
});

test('config: [upload] limit and [restore] limit are parsed; bad ones are a ConfigError (exit 3) naming the file, line and key', () => {
  const c = configFromObject({ store: { url: 's3://b/p' }, upload: { limit: '08:00-23:00=2MiB/s, 23:00-08:00=off' }, restore: { limit: '500KiB/s' } }, '/etc/zbk/config.toml');
  assert.equal(c.upload.limit?.windows.length, 2);
  assert.equal(c.restore.limit?.windows[0]?.rate, 500 * KiB);
  assert.equal(configFromObject({ store: { url: 's3://b/p' } }, '/x').upload.limit, undefined, 'no limit by default');

  const dir = mkdtempSync(join(tmpdir(), 'zbk-bw-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'config.toml');
  const load = (toml: string): ConfigError => {
    writeFileSync(file, toml);
    try {
      loadConfig(file);
    } catch (err) {
      assert.ok(err instanceof ConfigError, String(err));
      assert.equal(err.exitCode, ExitCode.CONFIG);
      assert.ok(!err.message.includes('\n'), 'one line');
      return err;
    }
    assert.fail('loaded');
  };
  let e = load('[store]\nurl = "s3://b/p"\n\n[upload]\nparallel = 2\nlimit = "08:00-23:00=2MiB/s"\n');
  assert.match(e.message, new RegExp(`^${file}:6: upload\\.limit is not a bandwidth limit: the schedule leaves 00:00-08:00 without a rate`));
  e = load('[store]\nurl = "s3://b/p"\n[restore]\nlimit = "08:00-23:00=2MiB/s, 22:00-08:00=off"\n');
  assert.match(e.message, new RegExp(`^${file}:4: restore\\.limit is not a bandwidth limit: windows 08:00-23:00 and 22:00-08:00 overlap`));
  e = load('[store]\nurl = "s3://b/p"\n[upload]\nlimit = 2097152\n');
  assert.match(e.message, new RegExp(`^${file}:4: upload\\.limit must be a rate in quotes`));
  e = load('[store]\nurl = "s3://b/p"\n[upload]\nlimit = "2 megs"\n');
  assert.match(e.message, /upload\.limit is not a bandwidth limit: not a rate: "2 megs"/);
  e = load('[store]\nurl = "s3://b/p"\nlimit = "2MiB/s"\n');
  assert.match(e.message, /unknown key `limit` in \[store\] — it belongs in \[upload\] or in \[restore\]/);
});

test('flags: a bad --limit-upload is a UsageError (exit 2) naming the flag; the flag, off included, overrides the config', () => {
  assert.throws(
    () => parseLimitFlag('2 megs', 'limit-upload'),
    (e: unknown) => e instanceof UsageError && e.exitCode === ExitCode.USAGE && /^--limit-upload: not a rate: "2 megs"/.test(e.message),
  );
  assert.throws(() => parseLimitFlag('08:00-09:00=1MiB/s', 'limit-download'), /--limit-download: the schedule leaves 00:00-08:00 without a rate/);
  assert.equal(parseLimitFlag(undefined, 'limit-upload'), undefined);
  const config = configFromObject({ store: { url: 's3://b/p' }, upload: { limit: '1MiB/s' }, restore: { limit: '1MiB/s' } }, '/x');
  applyLimit(config, 'upload', undefined);
  assert.equal(config.upload.limit?.windows[0]?.rate, MiB, 'no flag: the config stands');
  applyLimit(config, 'upload', parseLimitFlag('off', 'limit-upload'));
  assert.equal(isUnlimited(config.upload.limit), true, '--limit-upload off disables a configured limit');
  applyLimit(config, 'download', parseLimitFlag('4MiB/s', 'limit-download'));
  assert.equal(config.restore.limit?.windows[0]?.rate, 4 * MiB);
});
