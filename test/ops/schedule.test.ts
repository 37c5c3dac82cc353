/**
 * `zbk schedule`'s units may write where zbk keeps state: the per-repository
 * state dir's base when the default is used (an older zbk's shared manifest
 * is moved out of it by the first run), and a directory that does not exist
 * yet does not keep the unit from starting.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { scheduleFiles } from '../../src/services/schedule.js';

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
  const input = {
    zbkPath: '/usr/bin/zbk',
    configPath: '/etc/zbk/config.toml',
    passphraseFile: null,
    stateDir: '/var/lib/zbk',
    pushAt: 'daily',
    maxAge: '26h',
    restoreDataset: '/home/photos',
    restoreTarget: '/mnt/new/photos',
  };
  const push = (datasets: string[]): string => scheduleFiles({ ...input, datasets }).files.find((f) => f.path.endsWith('zbk-push.service'))!.content;
  assert.match(push(['tank/photos', '/home/photos']), /^ReadWritePaths=\/home$/m);
  assert.match(push(['tank/photos', '/home/photos']), /^ProtectHome=read-only$/m, 'the rest of /root and /run/user stays protected');
  assert.doesNotMatch(push(['tank/photos', '/srv/photos']), /^ReadWritePaths=\/home$/m);
  assert.doesNotMatch(push(['tank/homepool']), /^ReadWritePaths=\/(home|root)/m);
});
