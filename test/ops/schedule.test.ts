/**
 * `zbk schedule`'s units may write where zbk keeps state: the per-repository
 * state dir's base when the default is used (an older zbk's shared manifest
 * is moved out of it by the first run), and a directory that does not exist
 * yet does not keep the unit from starting. `--metrics-textfile` adds the
 * Prometheus textfile refresh to the push unit only.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { checkMetricsTextfile, nixosExample, scheduleFiles } from '../../src/services/schedule.js';

/** A schedule input as `zbk schedule` makes it, for one config. */
const INPUT = {
  zbkPath: '/usr/bin/zbk',
  configPath: '/etc/zbk/config.toml',
  passphraseFile: null,
  stateDir: '/var/lib/zbk',
  pushAt: 'daily',
  maxAge: '26h',
  restoreDataset: 'tank/photos',
  restoreTarget: 'newpool/photos',
};

test('schedule: ReadWritePaths is the given state directory, prefixed "-" so a missing one does not fail the unit', () => {
  const r = scheduleFiles({
    zbkPath: '/usr/bin/zbk',
    configPath: '/etc/zbk/config.toml',
    passphraseFile: '/etc/zbk/passphrase',
    stateDir: '/var/lib/zbk',
    pushAt: '*-*-* 02:30',
    maxAge: '26h',
    restoreDataset: 'tank/photos',
    restoreTarget: 'newpool/photos',
  });
  const units = r.files.filter((f) => f.path.endsWith('.service'));
  assert.ok(units.length > 0);
  for (const u of units) assert.match(u.content, /^ReadWritePaths=-\/var\/lib\/zbk$/m, u.path);
});

test('schedule: a btrfs dataset below /home makes /home writable (ProtectHome=read-only would refuse its pins); ZFS datasets and /srv change nothing', () => {
  const input = { ...INPUT, restoreDataset: '/home/photos', restoreTarget: '/mnt/new/photos' };
  const push = (datasets: string[]): string => scheduleFiles({ ...input, datasets }).files.find((f) => f.path.endsWith('zbk-push.service'))!.content;
  assert.match(push(['tank/photos', '/home/photos']), /^ReadWritePaths=\/home$/m);
  assert.match(push(['tank/photos', '/home/photos']), /^ProtectHome=read-only$/m, 'the rest of /root and /run/user stays protected');
  assert.doesNotMatch(push(['tank/photos', '/srv/photos']), /^ReadWritePaths=\/home$/m);
  assert.doesNotMatch(push(['tank/homepool']), /^ReadWritePaths=\/(home|root)/m);
});

test('schedule --metrics-textfile: the push unit refreshes the Prometheus textfile after every run, failed ones too (ExecStopPost=, "-"); without it, and in the other units, nothing', () => {
  const input = INPUT;
  const dir = checkMetricsTextfile('/var/lib/prometheus/node-exporter/');
  assert.equal(dir, '/var/lib/prometheus/node-exporter');
  const files = scheduleFiles({ ...input, metricsTextfile: dir }).files;
  const push = files.find((f) => f.path.endsWith('zbk-push.service'))!.content;
  assert.match(push, /^ExecStart=\/usr\/bin\/zbk push\n/m);
  assert.match(push, /^ExecStopPost=-\/usr\/bin\/zbk metrics --textfile \/var\/lib\/prometheus\/node-exporter$/m);
  assert.doesNotMatch(push, /^ExecStartPost=/m, 'ExecStopPost= alone: it runs after a success and after a failure');
  assert.match(push, /^TimeoutStopSec=10min$/m, 'the refresh gets the store retry budget, not the 90 s default');
  assert.match(push, /^ReadWritePaths=-\/var\/lib\/prometheus\/node-exporter$/m);
  for (const f of files.filter((x) => !x.path.endsWith('zbk-push.service'))) assert.doesNotMatch(f.content, /metrics|ExecStopPost/, f.path);
  for (const f of scheduleFiles(input).files) assert.doesNotMatch(f.content, /metrics|ExecStopPost|TimeoutStopSec/, f.path);
  assert.match(nixosExample({ ...input, metricsTextfile: dir }), /ExecStopPost = "-\/usr\/bin\/zbk metrics --textfile \/var\/lib\/prometheus\/node-exporter";/);
  for (const bad of ['relative/dir', '/with space', '/a%b', '/a;b', '/a$b']) assert.throws(() => checkMetricsTextfile(bad), /absolute directory path/, bad);
});

test('schedule --metrics-textfile: systemd-analyze verify reads the push unit without a complaint', (t) => {
  const which = spawnSync('systemd-analyze', ['--version'], { encoding: 'utf8' });
  if (which.error || which.status !== 0) return t.skip('systemd-analyze is not installed');
  const dir = mkdtempSync(join(tmpdir(), 'zbk-units-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const push = scheduleFiles({
    zbkPath: process.execPath,
    configPath: '/etc/zbk/config.toml',
    passphraseFile: '/etc/zbk/passphrase',
    stateDir: '/var/lib/zbk',
    pushAt: '*-*-* 02:30',
    maxAge: '26h',
    restoreDataset: 'tank/photos',
    restoreTarget: 'newpool/photos',
    metricsTextfile: '/var/lib/prometheus/node-exporter',
  }).files.find((f) => f.path.endsWith('zbk-push.service'))!;
  const unit = join(dir, 'zbk-push.service');
  writeFileSync(unit, push.content);
  const r = spawnSync('systemd-analyze', ['verify', unit], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stderr.split('\n').filter((l) => l.includes(unit)).join('\n'), '', 'no complaint about the unit');
});
