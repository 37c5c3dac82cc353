/**
 * Progress outside a terminal, end to end: `zbk push --json` with stdout
 * and stderr as pipes (as under systemd) and `--progress-interval 1`,
 * slowed by `--limit-upload 4MiB/s` to last a few seconds, writes progress
 * lines with human units and a final line to stderr, while stdout is only
 * the JSON result; `--progress-interval 0` writes none. No durations are
 * asserted.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parse } from 'smol-toml';
import { writeConfigFile } from '../../src/config/config.js';
import type { PushResult } from '../../src/services/push.js';
import { jsonOf, startZbk } from '../helpers/cli.js';
import { requireZfs, writeRandomFiles, zfsUnderTest } from '../helpers/pool.js';
import { datasetRepo } from './fixture.js';

const SIZE = String.raw`\d+(?:\.\d+)? (?:kB|MB)`;
const RATE = String.raw`\d+(?:\.\d+)? (?:B|kB|MB)/s`;
const DURATION = String.raw`(?:\d+(?:\.\d)?s|\d+m(?: \d+s)?)`;

test(
  'a push outside a terminal logs progress lines (human sizes, rates, volume/part) and a final line on stderr; stdout stays the --json result; --progress-interval 0 logs none',
  { skip: zfsUnderTest === 'openzfs' && 'progress lines do not depend on the ZFS: run in the zfs-fuse lane' },
  async (t) => {
    if (!requireZfs(t)) return;
    // 5 MiB parts, one at a time: at 4 MiB/s a part is acknowledged every 1.3 s or so.
    const { pool, ds, mnt, repo } = await datasetRepo(t, { name: 'journal' });
    const doc = parse(readFileSync(repo.configPath, 'utf8')) as Record<string, Record<string, unknown>>;
    doc.upload = { ...(doc.upload ?? {}), parallel: 1 };
    writeConfigFile(repo.configPath, doc);
    writeRandomFiles(mnt, { files: 4, bytesEach: 4 * 1024 * 1024, seed: 'progress' });
    await pool.zfs.snapshot(`${ds}@s1`);

    const r = await startZbk(['push', ds, '--json', '--progress-interval', '1', '--limit-upload', '4MiB/s'], repo.env).done;
    assert.equal(r.code, 0, r.stderr);
    const result = jsonOf<PushResult>(r);
    assert.equal(result.results[0]!.kind, 'full');
    assert.doesNotMatch(r.stdout, /^progress /m, 'progress never goes to stdout');

    const label = `progress ${ds.replace('/', '\\/')}@s1`;
    const progress = r.stderr.split('\n').filter((l) => new RegExp(`^${label}: ${SIZE}(?: of about ${SIZE} \\(\\d+%\\))?`).test(l));
    assert.ok(progress.length >= 1, `progress lines on stderr: ${r.stderr}`);
    for (const line of progress) {
      assert.match(
        line,
        new RegExp(`^${label}: ${SIZE}(?: of about ${SIZE} \\(\\d+%\\)| \\(more than the estimated ${SIZE}\\))? after ${DURATION}, ${RATE} over the last ${DURATION}, ${RATE} overall(?:, ETA ${DURATION})?, volume \\d+ part \\d+$`),
      );
    }
    assert.match(r.stderr, new RegExp(`^${label}: finished: ${SIZE} in ${DURATION}, ${RATE} overall$`, 'm'), r.stderr);

    // Another push, progress lines off: none, and the human summary alone on stdout.
    writeRandomFiles(join(mnt, 'more'), { files: 1, bytesEach: 512 * 1024, seed: 'progress-2' });
    await pool.zfs.snapshot(`${ds}@s2`);
    const quiet = await startZbk(['push', ds, '--progress-interval', '0'], repo.env).done;
    assert.equal(quiet.code, 0, quiet.stderr);
    assert.match(quiet.stdout, /pushed incremental @s2 from @s1/);
    assert.doesNotMatch(quiet.stderr + quiet.stdout, /^progress/m);
  },
);
