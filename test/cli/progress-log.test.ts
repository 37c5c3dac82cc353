/**
 * Progress outside a terminal (src/cli/progress-log.ts), driven by a fake
 * clock: a line only once the interval has passed since the last one, human
 * sizes and rates, the ETA from the overall rate, a line when a stream ends
 * or stops, "nothing reported" lines at doubling gaps; and the terminal bar
 * (src/cli/progress.ts) showing human totals, not raw byte counts.
 */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { etaSeconds, formatDuration, ProgressLog } from '../../src/cli/progress-log.js';
import { progressBar, progressReporter } from '../../src/cli/progress.js';

const MB = 1_000_000;

function fakeLog(intervalSeconds = 60): { log: ProgressLog; lines: string[]; at: (seconds: number) => void } {
  let now = 1_700_000_000_000;
  const start = now;
  const lines: string[] = [];
  const log = new ProgressLog({ intervalSeconds, now: () => now, write: (l) => void lines.push(l), what: 'zbk push' });
  return { log, lines, at: (seconds) => void (now = start + seconds * 1000) };
}

test('a line only when a report arrives at least the interval after the last line; human sizes, both rates, ETA and volume/part; a line when the stream ends', () => {
  const { log, lines, at } = fakeLog(60);
  at(0);
  log.begin({ id: 's1', label: 'tank/photos@s1', totalBytes: 600 * MB, estimate: true });
  // 1 MB/s for the first minute, a report every 10 s.
  for (let s = 10; s <= 50; s += 10) {
    at(s);
    log.update({ id: 's1', label: 'tank/photos@s1', totalBytes: 600 * MB, estimate: true, doneBytes: s * MB, detail: `volume 0 part ${s / 10}` });
  }
  assert.deepEqual(lines, [], 'nothing before the interval');
  at(60);
  log.update({ id: 's1', label: 'tank/photos@s1', totalBytes: 600 * MB, estimate: true, doneBytes: 60 * MB, detail: 'volume 0 part 6' });
  assert.deepEqual(lines, ['progress tank/photos@s1: 60 MB of about 600 MB (10%) after 1m, 1 MB/s over the last 1m, 1 MB/s overall, ETA 9m, volume 0 part 6']);

  // 3 MB/s for the second minute: the interval's rate and the overall one differ; the ETA uses the overall rate.
  for (let s = 70; s <= 110; s += 10) {
    at(s);
    log.update({ id: 's1', label: 'tank/photos@s1', totalBytes: 600 * MB, estimate: true, doneBytes: (60 + (s - 60) * 3) * MB, detail: 'volume 1 part 1' });
  }
  assert.equal(lines.length, 1);
  at(120);
  log.update({ id: 's1', label: 'tank/photos@s1', totalBytes: 600 * MB, estimate: true, doneBytes: 240 * MB, detail: 'volume 1 part 2' });
  assert.equal(lines[1], 'progress tank/photos@s1: 240 MB of about 600 MB (40%) after 2m, 3 MB/s over the last 1m, 2 MB/s overall, ETA 3m, volume 1 part 2');

  // A late report (75 s after the line): the interval's rate is over those 75 s.
  at(195);
  log.update({ id: 's1', label: 'tank/photos@s1', totalBytes: 600 * MB, estimate: true, doneBytes: 390 * MB, detail: 'volume 1 part 3' });
  assert.match(lines[2]!, /^progress tank\/photos@s1: 390 MB of about 600 MB \(65%\) after 3m 15s, 2 MB\/s over the last 1m 15s, 2 MB\/s overall, ETA 1m 45s, volume 1 part 3$/);

  at(230);
  log.end('s1', 600 * MB + 12_345);
  assert.equal(lines[3], 'progress tank/photos@s1: finished: 600.01 MB in 3m 50s, 2.6 MB/s overall');
  assert.equal(lines.length, 4);
  log.close();
  assert.equal(lines.length, 4, 'a finished stream is not reported again');
});

test('gigabytes, a stream past its estimate, no total, bytes reused without moving', () => {
  const { log, lines, at } = fakeLog(1);
  at(0);
  log.begin({ id: 'a', label: 'tank/a@s', totalBytes: 4 * 10 ** 9, estimate: true });
  at(100);
  log.update({ id: 'a', label: 'tank/a@s', totalBytes: 4 * 10 ** 9, estimate: true, doneBytes: 1.234e9, detail: 'volume 0 part 37' });
  assert.equal(lines[0], 'progress tank/a@s: 1.23 GB of about 4 GB (30%) after 1m 40s, 12.34 MB/s over the last 1m 40s, 12.34 MB/s overall, ETA 3m 44s, volume 0 part 37');
  at(400);
  log.update({ id: 'a', label: 'tank/a@s', totalBytes: 4 * 10 ** 9, estimate: true, doneBytes: 4.5e9, detail: 'volume 1 part 3' });
  assert.match(lines[1]!, /^progress tank\/a@s: 4\.5 GB \(more than the estimated 4 GB\) after 6m 40s, .* overall, volume 1 part 3$/, 'no percentage or ETA past the estimate');

  log.update({ id: 'b', label: 'tank/b@s', totalBytes: null, doneBytes: 5 * MB, detail: 'volume 0 part 1' });
  assert.match(lines[2]!, /^progress tank\/a@s: stopped at 4\.5 GB after 6m 40s, 11\.25 MB\/s overall$/, 'a stream that never ended is stopped when the next begins');
  at(410);
  log.update({ id: 'b', label: 'tank/b@s', totalBytes: null, doneBytes: 25 * MB, detail: 'volume 0 part 2' });
  assert.equal(lines[3], 'progress tank/b@s: 25 MB after 10s, 2.5 MB/s over the last 10s, 2.5 MB/s overall, volume 0 part 2', 'no total: no percentage, no ETA');

  // A restore volume: 3 GB were verified on disk from an earlier run; 10 MB/s fetched now.
  log.begin({ id: 'v', label: 'tank/a@s volume 2', totalBytes: 4e9 });
  assert.match(lines[4]!, /^progress tank\/b@s: stopped at 25 MB/);
  at(420);
  log.update({ id: 'v', label: 'tank/a@s volume 2', totalBytes: 4e9, doneBytes: 3.1e9, movedBytes: 100 * MB, detail: 'part 94/128' });
  assert.equal(lines[5], 'progress tank/a@s volume 2: 3.1 GB of 4 GB (77%) after 10s, 10 MB/s over the last 10s, 10 MB/s overall, ETA 1m 30s, part 94/128');
  at(430);
  log.end('v', 4e9);
  assert.equal(lines[6], 'progress tank/a@s volume 2: finished: 4 GB in 20s, 50 MB/s overall');
});

test('nothing reported: a line after the interval, then at doubling gaps up to 15 minutes; a report resets the gap; an open stream is named', () => {
  const { log, lines, at } = fakeLog(60);
  const tickAt = (s: number): void => {
    at(s);
    log.tick();
  };
  tickAt(59);
  assert.deepEqual(lines, []);
  tickAt(60);
  assert.deepEqual(lines, ['progress: zbk push still running, no bytes moved for 1m']);
  tickAt(120);
  tickAt(179);
  assert.equal(lines.length, 1, 'the next after twice the gap');
  tickAt(180);
  assert.equal(lines[1], 'progress: zbk push still running, no bytes moved for 3m');
  // Then 4, 8 and 15 (capped) minutes after the last.
  const times: number[] = [];
  for (let s = 181; s <= 180 + 240 + 480 + 900 + 900 + 10; s++) {
    const before = lines.length;
    tickAt(s);
    if (lines.length > before) times.push(s);
  }
  assert.deepEqual(times, [180 + 240, 180 + 240 + 480, 180 + 240 + 480 + 900, 180 + 240 + 480 + 900 + 900]);

  // A stream with a report resets the gap; its quiet line names it and what is done.
  at(3000);
  log.begin({ id: 's', label: 'tank/photos@s2', totalBytes: 100 * MB, estimate: true });
  at(3010);
  log.update({ id: 's', label: 'tank/photos@s2', totalBytes: 100 * MB, estimate: true, doneBytes: 5 * MB, detail: 'volume 0 part 1' });
  const n = lines.length;
  tickAt(3069);
  assert.equal(lines.length, n, 'a report 59 s ago');
  tickAt(3070);
  assert.equal(lines[n], 'progress tank/photos@s2: nothing reported for 1m; 5 MB of about 100 MB so far, 71.42 kB/s overall, volume 0 part 1');
  tickAt(3130);
  assert.equal(lines.length, n + 1, 'doubling again');
  log.close();
  assert.match(lines[n + 1]!, /^progress tank\/photos@s2: stopped at 5 MB after 2m 10s/);
});

test('interval 0 writes nothing; durations and ETA', () => {
  const { log, lines, at } = fakeLog(0);
  log.begin({ id: 'a', label: 'x@y', totalBytes: 10 });
  at(1000);
  log.update({ id: 'a', label: 'x@y', totalBytes: 10, doneBytes: 5, detail: '' });
  log.tick();
  log.end('a');
  log.close();
  assert.deepEqual(lines, []);
  assert.equal(log.enabled, false);

  assert.equal(formatDuration(0), '0s');
  assert.equal(formatDuration(1.44), '1.4s');
  assert.equal(formatDuration(9.96), '10s');
  assert.equal(formatDuration(59.6), '1m');
  assert.equal(formatDuration(3 * 3600 + 5 * 60 + 7), '3h 5m');
  assert.equal(formatDuration(2 * 86400 + 3 * 3600), '2d 3h');
  assert.equal(etaSeconds(100, 4), 25);
  assert.equal(etaSeconds(0, 0), 0);
  assert.equal(etaSeconds(100, 0), null, 'nothing moves: no ETA');
});

/** A stream that says it is a terminal and keeps what is written to it. */
function fakeTty(): { stream: NodeJS.WriteStream; text: () => string } {
  let out = '';
  const w = new Writable({
    write(chunk: Buffer, _enc, cb) {
      out += chunk.toString('utf8');
      cb();
    },
  });
  Object.assign(w, { isTTY: true, columns: 160, rows: 40 });
  return { stream: w as unknown as NodeJS.WriteStream, text: () => out };
}

test('the terminal bar shows human sizes for done and total (not raw byte counts), and "?" for an unknown total', () => {
  const tty = fakeTty();
  const bar = progressBar(true, tty.stream);
  bar.start('tank/photos@s1', 134_217_728);
  bar.update(33_554_432, 'volume 0 part 1');
  bar.stop();
  const drawn = tty.text();
  assert.match(drawn, /tank\/photos@s1 .*33\.55 MB\/134\.21 MB .*B\/s ETA .*volume 0 part 1/);
  assert.doesNotMatch(drawn, /33554432|134217728/);

  const unknown = fakeTty();
  const bar2 = progressBar(true, unknown.stream);
  bar2.start('tank/b@s', null);
  bar2.update(5_000_000, 'volume 0 part 2');
  bar2.stop();
  assert.match(unknown.text(), /5 MB\/\? /);
  assert.doesNotMatch(unknown.text(), /ETA/);

  const notTty = fakeTty();
  Object.assign(notTty.stream, { isTTY: false });
  const none = progressBar(true, notTty.stream);
  none.start('x', 10);
  none.update(5, '');
  none.stop();
  assert.equal(notTty.text(), '', 'no bar outside a terminal');
});

test('the reporter: a bar at a terminal, lines with --json or outside one', () => {
  const tty = fakeTty();
  const atTerminal = progressReporter({ json: false, intervalSeconds: 60, what: 'zbk push', stderr: tty.stream });
  atTerminal.begin({ id: 's', label: 'tank/a@s', totalBytes: 2e6 });
  atTerminal.update({ id: 's', label: 'tank/a@s', totalBytes: 2e6, doneBytes: 1e6, detail: 'volume 0 part 1' });
  atTerminal.end('s', 2e6);
  atTerminal.close();
  assert.match(tty.text(), /1 MB\/2 MB/);
  assert.doesNotMatch(tty.text(), /^progress /m);

  const json = fakeTty();
  const withJson = progressReporter({ json: true, intervalSeconds: 60, what: 'zbk push', stderr: json.stream });
  withJson.begin({ id: 's', label: 'tank/a@s', totalBytes: 2e6 });
  withJson.end('s', 2e6);
  withJson.close();
  assert.match(json.text(), /^progress tank\/a@s: finished: 2 MB in \d+(?:\.\d)?s, .*\/s overall\n$/);
});
