/**
 * Alerts and monitoring end to end, through the CLI on real ZFS: every
 * push that fails — also before the upload (wrong or missing passphrase,
 * unreachable store, lock held with --no-wait) — runs post_push with
 * ZBK_RESULT=failure and sends the on_failure webhook, without secrets, and
 * `zbk check` is CRITICAL (exit 2) until a push succeeds; a mistyped
 * `--snapshot` is exit 2 and changes nothing; `zbk check` warns when the
 * newest snapshot on the source is old (the snapshot tool stopped).
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { acquireLock } from '../../src/manifest/lock.js';
import { requireZfs, writeRandomFiles } from '../helpers/pool.js';
import { runZbk, type CliResult } from '../helpers/cli.js';
import type { TestRepo } from '../helpers/repo.js';
import { datasetRepo } from '../e2e/fixture.js';
import { closedPort } from '../helpers/ports.js';

interface Ping {
  path: string;
  body: string;
}

/** A local webhook receiver: every request's path and body. */
async function webhookServer(t: TestContext): Promise<{ url: string; pings: Ping[] }> {
  const pings: Ping[] = [];
  const server = createServer((req: IncomingMessage, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString('utf8')));
    req.on('end', () => {
      pings.push({ path: req.url ?? '', body });
      res.end('OK');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => server.close());
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, pings };
}

/** A local port nothing listens on. */

const WEBHOOK_TOKEN = 'SECRET-WEBHOOK-TOKEN-1234';
const AWS_SECRET = 'wJalrXUtnFEMI-test-secret-key';
const WRONG_PASSPHRASE = 'not the passphrase at all 987';
const TYPED_PASSPHRASE = 'my secret passphrase 123';

function zbk(repo: TestRepo, args: string[], extra: Record<string, string> = {}): Promise<CliResult> {
  return runZbk(args, { ...repo.env, ...extra });
}

test('every failed push alerts and makes check CRITICAL until a push succeeds; a mistyped --snapshot does neither', async (t) => {
  if (!requireZfs(t)) return;
  const { pool, ds, mnt, repo } = await datasetRepo(t, { name: 'photos', sizeMiB: 256 });
  const hook = await webhookServer(t);
  const log = join(repo.dir, 'hooks.log');
  const postPush = ['sh', '-c', `printf '%s %s %s pf=%s msg=%s\\n' "$ZBK_DATASET" "$ZBK_RESULT" "\${ZBK_ERROR:-}" "\${ZBK_PASSPHRASE_FILE:-}" "\${ZBK_MESSAGE:-}" >> ${log}`];
  appendFileSync(
    repo.configPath,
    `\n[hooks]\npost_push = ${JSON.stringify(postPush)}\non_success = "${hook.url}/ok/${WEBHOOK_TOKEN}"\non_failure = "${hook.url}/fail/${WEBHOOK_TOKEN}"\ntimeout_seconds = 30\n` +
      `\n[retry]\nretries = 1\nmin_timeout_ms = 10\nmax_timeout_ms = 50\n`,
  );
  const goodConfig = readFileSync(repo.configPath, 'utf8');
  const hookLines = (): string[] => (existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n').filter(Boolean) : []);
  const failPings = (): Ping[] => hook.pings.filter((p) => p.path.startsWith('/fail/'));
  const checkCode = async (): Promise<{ code: number | null; line: string }> => {
    const r = await zbk(repo, ['check']);
    return { code: r.code, line: r.stdout.trim() };
  };
  const assertNoSecrets = (): void => {
    const sent = [readFileSync(log, 'utf8'), ...hook.pings.map((p) => p.body)].join('\n');
    for (const secret of [WRONG_PASSPHRASE, TYPED_PASSPHRASE, AWS_SECRET, WEBHOOK_TOKEN, 'correct horse battery staple']) assert.ok(!sent.includes(secret), `a secret reached a hook: ${secret}`);
    assert.ok(!/pf=\S/.test(readFileSync(log, 'utf8')), 'post_push does not get ZBK_PASSPHRASE_FILE');
  };

  writeRandomFiles(mnt, { files: 1, bytesEach: 1024 * 1024, seed: 'alerts' });
  await pool.zfs.snapshot(`${ds}@s1`);
  let r = await zbk(repo, ['push']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(hookLines(), [`${ds} success  pf= msg=`]);
  assert.equal((await checkCode()).code, 0);

  // 1. Wrong passphrase (fails before the key opens).
  const wrong = join(repo.dir, 'wrong-passphrase');
  writeFileSync(wrong, `${WRONG_PASSPHRASE}\n`, { mode: 0o600 });
  r = await zbk(repo, ['push'], { ZBK_PASSPHRASE_FILE: wrong });
  assert.equal(r.code, 4, r.stderr);
  assert.match(hookLines().at(-1)!, new RegExp(`^${ds} failure WRONG_PASSPHRASE pf= msg=wrong passphrase`));
  assert.equal(failPings().length, 1, 'the on_failure webhook was sent once');
  assert.match(failPings()[0]!.body, new RegExp(`zbk push ${ds} failed: wrong passphrase`));
  let c = await checkCode();
  assert.equal(c.code, 2, c.line);
  assert.match(c.line, new RegExp(`^ZBK CRITICAL - ${ds}: last push failed at \\S+: wrong passphrase.* \\| .*failed_pushes=1;;0;0`));
  // Still CRITICAL on the next check: the record is durable.
  assert.equal((await checkCode()).code, 2);
  // A push that succeeds with nothing to push clears it.
  r = await zbk(repo, ['push']);
  assert.equal(r.code, 0, r.stderr);
  c = await checkCode();
  assert.equal(c.code, 0, c.line);

  // 2. Unreachable store: s3 on a local port nothing listens on.
  const port = await closedPort();
  writeFileSync(
    repo.configPath,
    goodConfig.replace(/^url = .*$/m, `url = "s3://zbk-bucket/backups"\nendpoint = "http://127.0.0.1:${port}"\npath_style = true\nregion = "us-east-1"`),
    { mode: 0o600 },
  );
  const awsEnv = { AWS_ACCESS_KEY_ID: 'AKIAIOSFODNN7EXAMPLE', AWS_SECRET_ACCESS_KEY: AWS_SECRET, AWS_EC2_METADATA_DISABLED: 'true' };
  r = await zbk(repo, ['push'], awsEnv);
  assert.equal(r.code, 5, r.stderr);
  assert.match(hookLines().at(-1)!, new RegExp(`^${ds} failure \\S+ pf= msg=`));
  assert.equal(failPings().length, 2);
  assert.equal((await checkCode()).code, 2);
  writeFileSync(repo.configPath, goodConfig, { mode: 0o600 });
  assert.equal((await zbk(repo, ['push'])).code, 0);
  assert.equal((await checkCode()).code, 0);

  // 3. Lock held, --no-wait.
  const lock = await acquireLock(join(repo.stateDir, 'manifest.db'), { wait: false, command: 'test holder' });
  try {
    r = await zbk(repo, ['push', '--no-wait']);
    assert.equal(r.code, 8, r.stderr);
  } finally {
    lock.release();
  }
  assert.match(hookLines().at(-1)!, new RegExp(`^${ds} failure LOCKED pf= msg=`));
  assert.equal(failPings().length, 3);
  assert.equal((await checkCode()).code, 2);
  assert.equal((await zbk(repo, ['push'])).code, 0);
  assert.equal((await checkCode()).code, 0);

  // 4. Missing passphrase file (a config error after the config was read).
  r = await zbk(repo, ['push'], { ZBK_PASSPHRASE_FILE: join(repo.dir, 'no-such-file') });
  assert.equal(r.code, 3, r.stderr);
  assert.match(hookLines().at(-1)!, new RegExp(`^${ds} failure PASSPHRASE_FILE pf= msg=cannot read the passphrase file`));
  assert.equal(failPings().length, 4);
  assert.equal((await checkCode()).code, 2);
  assert.equal((await zbk(repo, ['push'])).code, 0);
  assert.equal((await checkCode()).code, 0);

  // 4b. A passphrase typed into passphrase_file by mistake: the message names the key and the config file, never the value.
  writeFileSync(repo.configPath, `passphrase_file = ${JSON.stringify(TYPED_PASSPHRASE)}\n${goodConfig}`, { mode: 0o600 });
  r = await zbk(repo, ['push'], { ZBK_PASSPHRASE_FILE: '' });
  assert.equal(r.code, 3, r.stderr);
  assert.match(r.stderr, /cannot read the passphrase file named by passphrase_file in \S+config\.toml \(ENOENT\)/);
  assert.match(hookLines().at(-1)!, new RegExp(`^${ds} failure PASSPHRASE_FILE pf= msg=cannot read the passphrase file named by passphrase_file in `));
  assert.equal(failPings().length, 5);
  for (const text of [r.stderr, r.stdout, readFileSync(join(repo.stateDir, 'push-status.json'), 'utf8')]) {
    assert.ok(!text.includes(TYPED_PASSPHRASE), `the typed passphrase leaked: ${text}`);
  }
  assert.equal((await checkCode()).code, 2);
  writeFileSync(repo.configPath, goodConfig, { mode: 0o600 });
  assert.equal((await zbk(repo, ['push'])).code, 0);
  assert.equal((await checkCode()).code, 0);

  // 5. A mistyped --snapshot: exit 2, no hook, no webhook, check unaffected.
  const hooksBefore = hookLines().length;
  const pingsBefore = hook.pings.length;
  r = await zbk(repo, ['push', ds, '--snapshot', 'nosuch']);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /does not exist/);
  // A mistyped dataset on the command line (not configured, not in ZFS): the same.
  r = await zbk(repo, ['push', 'nosuchpool/typo']);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /dataset nosuchpool\/typo does not exist and is not configured/);
  assert.ok(!readFileSync(join(repo.stateDir, 'push-status.json'), 'utf8').includes('nosuchpool'), 'nothing recorded');
  assert.equal(hookLines().length, hooksBefore, 'no post_push');
  assert.equal(hook.pings.length, pingsBefore, 'no webhook');
  assert.equal((await checkCode()).code, 0);

  assertNoSecrets();
});

test('check warns (exit 1) when the newest snapshot on the source is older than --max-snapshot-age', async (t) => {
  if (!requireZfs(t)) return;
  const { pool, ds, mnt, repo } = await datasetRepo(t, { name: 'docs', sizeMiB: 256 });
  writeRandomFiles(mnt, { files: 1, bytesEach: 256 * 1024, seed: 'stale' });
  await pool.zfs.snapshot(`${ds}@s1`);
  assert.equal((await zbk(repo, ['push'])).code, 0);
  // Three hours later, no new snapshot: the push succeeds ("nothing to push"), the backup is not yet stale.
  const later = { ZBK_NOW: new Date(Date.now() + 3 * 3600_000).toISOString() };
  let r = await zbk(repo, ['check', '--max-snapshot-age', '2h'], later);
  assert.equal(r.code, 1, r.stdout + r.stderr);
  assert.match(r.stdout, new RegExp(`^ZBK WARNING - ${ds}: newest snapshot on the source @s1 is 3h \\d+m old \\(limit 2h 0m\\): is the snapshot tool still running\\?`));
  assert.match(r.stdout, / \| age=\d+s;;93600;0 snapshot_age=1\d{4}s;7200;;0 /);
  r = await zbk(repo, ['check', '--max-snapshot-age', '4h'], later);
  assert.equal(r.code, 0, r.stdout);
  r = await zbk(repo, ['check'], later);
  assert.equal(r.code, 0, `default: --max-snapshot-age = --max-age (26h): ${r.stdout}`);
  // A day later the backup is stale too: CRITICAL, with the source's part of the story.
  r = await zbk(repo, ['check'], { ZBK_NOW: new Date(Date.now() + 27 * 3600_000).toISOString() });
  assert.equal(r.code, 2, r.stdout);
  assert.match(r.stdout, /^ZBK CRITICAL - .*newest pushed snapshot @s1 is 1d \dh old.*WARNING: .*newest snapshot on the source @s1/);
  // A new snapshot on the source: fine again.
  await pool.zfs.snapshot(`${ds}@s2`);
  r = await zbk(repo, ['check', '--max-snapshot-age', '2h']);
  assert.equal(r.code, 0, r.stdout);
});

test('[hooks] include_names = false: success, failure and check webhooks carry no dataset or snapshot name', async (t) => {
  if (!requireZfs(t)) return;
  const { pool, ds, mnt, repo } = await datasetRepo(t, { name: 'family-photos' });
  const hook = await webhookServer(t);
  appendFileSync(repo.configPath, `\n[hooks]\non_success = "${hook.url}/ok"\non_failure = "${hook.url}/fail"\ninclude_names = false\n`);
  writeRandomFiles(mnt, { files: 1, bytesEach: 256 * 1024, seed: 'names' });
  await pool.zfs.snapshot(`${ds}@holiday-2026`);
  assert.equal((await zbk(repo, ['push'])).code, 0);
  const wrong = join(repo.dir, 'wrong-passphrase');
  writeFileSync(wrong, `${WRONG_PASSPHRASE}\n`, { mode: 0o600 });
  assert.equal((await zbk(repo, ['push'], { ZBK_PASSPHRASE_FILE: wrong })).code, 4);
  assert.equal((await zbk(repo, ['check', '--notify'])).code, 2);
  assert.equal(hook.pings.length, 3, hook.pings.map((p) => p.path).join(' '));
  const bodies = hook.pings.map((p) => p.body).join('\n');
  for (const name of [ds, 'family-photos', 'holiday-2026', pool.name]) assert.ok(!bodies.includes(name), `${name} reached the webhook: ${bodies}`);
  assert.match(bodies, /zbk push dataset-1: full dataset-1@<snapshot> \(\d+ bytes\)/);
  assert.match(bodies, /zbk push dataset-1 failed: wrong passphrase/);
  assert.match(bodies, /zbk check: ZBK CRITICAL - dataset-1/);
});
