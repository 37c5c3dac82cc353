/**
 * `zbk status` on a push killed midway (ZBK_CRASH_AT=part-acked:2, on real
 * ZFS through the CLI): the in-flight upload shows its parts and bytes
 * uploaded so far and what they cost as multipart staging (S3 Standard
 * storage, $0.023 / GB-month) per month and per day, the same in --json and
 * the human output and in `zbk cost`; once the push resumes to its end,
 * nothing is in flight.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { formatBytes, formatUSD } from '../../src/cli/format.js';
import { Manifest } from '../../src/manifest/manifest.js';
import type { CostResult } from '../../src/services/cost.js';
import type { StatusResult } from '../../src/services/status.js';
import { jsonOf, startZbk } from '../helpers/cli.js';
import { requireZfs, writeRandomFiles } from '../helpers/pool.js';
import { approx } from '../cost/approx.js';
import { datasetRepo } from './fixture.js';

test('status shows an in-flight upload: bytes uploaded so far and its staging cost per month and day', async (t) => {
  if (!requireZfs(t)) return;
  const { pool, ds, mnt, repo } = await datasetRepo(t);
  // One part in flight at a time, so the second acknowledged part is part 2 of volume 0 (10 MiB volumes of 5 MiB parts).
  const text = readFileSync(repo.configPath, 'utf8');
  writeFileSync(repo.configPath, text.includes('[upload]') ? text.replace('[upload]', '[upload]\nparallel = 1') : `${text}\n[upload]\nparallel = 1\n`);

  writeRandomFiles(mnt, { files: 3, bytesEach: 4 * 1024 * 1024, seed: 'staging' });
  await pool.zfs.snapshot(`${ds}@s1`);
  const killed = await startZbk(['push', ds], { ...repo.env, ZBK_CRASH_AT: 'part-acked:2' }).done;
  assert.equal(killed.signal, 'SIGKILL', `the push was not killed (exit ${killed.code}): ${killed.stderr}`);

  // What the manifest checkpointed: the sealed sizes of parts 1 and 2 of volume 0.
  const m = Manifest.open(join(repo.stateDir, 'manifest.db'), { readonly: true });
  let bytes: number;
  let key: string;
  try {
    const uploads = m.inFlightUploads();
    assert.equal(uploads.length, 1, JSON.stringify(uploads));
    key = uploads[0]!.key;
    const parts = m.partsOf(uploads[0]!.streamId, uploads[0]!.volumeIndex);
    assert.deepEqual(parts.map((p) => p.partNumber), [1, 2]);
    bytes = parts.reduce((n, p) => n + p.sealedSize, 0);
  } finally {
    m.close();
  }
  assert.ok(bytes > 10 * 1024 * 1024, `two sealed 5 MiB parts, got ${bytes} B`);
  // Staging at S3 Standard: GB × $0.023 a month, a 30th of that a day.
  const monthly = (bytes / 1e9) * 0.023;
  const daily = monthly / 30;

  const r = await repo.zbk(['status', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const st = jsonOf<StatusResult>(r);
  assert.equal(st.inFlight.length, 1);
  const u = st.inFlight[0]!;
  assert.equal(u.key, key);
  assert.equal(u.dataset, ds);
  assert.equal(u.parts, 2);
  assert.equal(u.bytesUploaded, bytes);
  approx(u.stagingCostPerMonth, monthly, 'staging per month');
  approx(u.stagingCostPerDay, daily, 'staging per day');
  assert.deepEqual([st.staging.parts, st.staging.bytes], [2, bytes]);
  approx(st.staging.monthly, monthly);
  approx(st.staging.daily, daily);

  // The human output says the same figures.
  const human = await repo.zbk(['status']);
  assert.equal(human.code, 0, human.stderr);
  assert.match(human.stdout, /in-flight uploads \(resumed by the next push; their parts are billed at S3 Standard storage rates until each completes\):/);
  const line = `${ds} ${key} (started ${u.initiated!.slice(0, 19)}): 2 part(s), ${formatBytes(bytes)} uploaded so far; staging ≈ ${formatUSD(monthly)}/month (${formatUSD(daily)}/day)`;
  assert.ok(human.stdout.includes(line), `expected "${line}" in:\n${human.stdout}`);

  // zbk cost counts the same staging.
  const cost = jsonOf<CostResult>(await repo.zbk(['cost', '--json']));
  assert.deepEqual([cost.staging.parts, cost.staging.bytes], [2, bytes]);
  approx(cost.staging.monthly, monthly);
  approx(cost.staging.daily, daily);

  // Resumed to its end: nothing in flight, no staging.
  const fin = await repo.zbk(['push', ds]);
  assert.equal(fin.code, 0, fin.stderr);
  const after = jsonOf<StatusResult>(await repo.zbk(['status', '--json']));
  assert.deepEqual(after.inFlight, []);
  assert.deepEqual(after.staging, { parts: 0, bytes: 0, monthly: 0, daily: 0 });
  assert.doesNotMatch((await repo.zbk(['status'])).stdout, /in-flight uploads/);
});
