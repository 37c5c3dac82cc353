/**
 * `zbk key passwd|export|import`, `zbk manifest rebuild` and `zbk doctor`
 * on good and bad setups (local file:// store; S3 only for "unreachable").
 * Also: secrets (passphrases, webhook URLs) never reach any output.
 */
import assert from 'node:assert/strict';
import { chmodSync, existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { DoctorResult } from '../../src/services/doctor.js';
import type { KeyExportResult, KeyWriteResult } from '../../src/services/key.js';
import type { RebuildResult } from '../../src/services/rebuild.js';
import { PASSPHRASE, createRepo, type TestRepo } from './helpers.js';

const NEW_PASSPHRASE = 'a completely different secret 77';
const WEBHOOK = 'https://hc-ping.example.invalid/0b5e3c1d-secret-token-9f8e';

function status(r: DoctorResult, name: string): string | undefined {
  return r.checks.find((c) => c.name === name)?.status;
}

/** A TCP port nothing listens on (bound, then closed). */
async function deadPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((res) => srv.listen(0, '127.0.0.1', res));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((res) => srv.close(() => res()));
  return port;
}

describe('zbk key', () => {
  let repo: TestRepo;
  before(async () => {
    repo = await createRepo();
  });
  after(() => repo.cleanup());

  it('passwd: the new passphrase opens the repository, the old one no longer does (no zbk.key.prev is kept)', async () => {
    const newFile = join(repo.dir, 'new-pass');
    writeFileSync(newFile, `${NEW_PASSPHRASE}\n`, { mode: 0o600 });
    const r = await repo.runJson<KeyWriteResult>(['key', 'passwd', '--new-passphrase-file', newFile, '--kdf', 'min']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.json.previousKeptAs, null);
    assert.deepEqual(r.json.removed, []);
    assert.ok(r.json.mirror, 'mirrored after the change');
    assert.ok(!existsSync(join(repo.storeDir, 'zbk.key.prev')), 'no copy under the old passphrase');
    assert.ok(!existsSync(join(repo.storeDir, 'zbk.key.next')), 'the staging copy is gone');

    const withNew = await repo.runJson<KeyExportResult>(['key', 'export'], { ZBK_PASSPHRASE_FILE: newFile });
    assert.equal(withNew.code, 0, withNew.stderr);
    assert.equal(withNew.json.keyId, r.json.keyId);
    const withOld = await repo.runJson<{ error: { code: string } }>(['key', 'export']);
    assert.equal(withOld.code, 4);
    assert.equal(withOld.json.error.code, 'WRONG_PASSPHRASE');
    // doctor agrees: the old passphrase fails the key check.
    const doc = await repo.runJson<DoctorResult>(['doctor']);
    assert.equal(doc.code, 1);
    assert.equal(status(doc.json, 'key file'), 'fail');
    // The passphrases never appear in any output.
    for (const out of [r.stderr, JSON.stringify(r.json), withOld.stderr, JSON.stringify(withOld.json), JSON.stringify(doc.json)]) {
      assert.ok(!out.includes(PASSPHRASE) && !out.includes(NEW_PASSPHRASE));
    }
    // Put the repo back on the original passphrase for the next tests.
    const back = await repo.run(['key', 'passwd', '--new-passphrase-file', repo.passphraseFile, '--kdf', 'min'], { ZBK_PASSPHRASE_FILE: newFile });
    assert.equal(back.code, 0, back.stderr);
  });

  it('export warns on stderr; import restores a deleted key file from the paper key', async () => {
    const exp = await repo.run(['key', 'export']);
    assert.equal(exp.code, 0, exp.stderr);
    assert.match(exp.stderr, /secret/);
    assert.match(exp.stdout, /^zbk paper key, format 1/);
    const paper = join(repo.dir, 'paper.txt');
    writeFileSync(paper, exp.stdout, { mode: 0o600 });
    rmSync(join(repo.storeDir, 'zbk.key'));
    rmSync(join(repo.storeDir, 'zbk.key.zbk-meta.json'), { force: true });
    assert.equal((await repo.run(['key', 'export'])).code, 3, 'no key file: not a repository');
    const imp = await repo.runJson<KeyWriteResult>(['key', 'import', '--file', paper, '--kdf', 'min']);
    assert.equal(imp.code, 0, imp.stderr);
    assert.equal((await repo.run(['verify'])).code, 0, 'repository opens again');
  });

  it('import replaces a key file damaged so that it still parses (its keyId flipped), but never with a paper key of another repository', async () => {
    const exp = await repo.run(['key', 'export']);
    assert.equal(exp.code, 0, exp.stderr);
    const paper = join(repo.dir, 'paper-2.txt');
    writeFileSync(paper, exp.stdout, { mode: 0o600 });
    const keyPath = join(repo.storeDir, 'zbk.key');
    const good = readFileSync(keyPath, 'utf8');
    const keyId = (JSON.parse(good) as { keyId: string }).keyId;
    const flipped = good.replace(keyId, keyId.slice(0, -1) + (keyId.endsWith('0') ? '1' : '0'));
    writeFileSync(keyPath, flipped);
    assert.notEqual((await repo.run(['verify'])).code, 0, 'the damaged key file opens nothing');
    const imp = await repo.runJson<KeyWriteResult>(['key', 'import', '--file', paper, '--kdf', 'min']);
    assert.equal(imp.code, 0, imp.stderr);
    assert.match(imp.json.previousKeptAs ?? '', /^zbk\.key\.replaced-/, 'the damaged file is kept under its own name');
    assert.equal(readFileSync(join(repo.storeDir, imp.json.previousKeptAs!), 'utf8'), flipped);
    assert.equal((await repo.run(['verify'])).code, 0, 'repository opens again');

    // Another repository's paper key opens none of this one's mirrors: refused, the key file untouched.
    const other = await createRepo();
    try {
      const otherPaper = join(repo.dir, 'paper-other.txt');
      const oexp = await other.run(['key', 'export']);
      assert.equal(oexp.code, 0, oexp.stderr);
      writeFileSync(otherPaper, oexp.stdout, { mode: 0o600 });
      const before = readFileSync(keyPath);
      const wrong = await repo.runJson<{ error: { code: string } }>(['key', 'import', '--file', otherPaper, '--kdf', 'min']);
      assert.equal(wrong.code, 3, JSON.stringify(wrong.json));
      assert.equal(wrong.json.error.code, 'KEY_MISMATCH');
      assert.deepEqual(readFileSync(keyPath), before);
    } finally {
      other.cleanup();
    }
  });

  it('manifest rebuild: recreates a missing manifest from the bucket; refuses to overwrite without --force', async () => {
    renameSync(join(repo.stateDir, 'manifest.db'), join(repo.dir, 'old-manifest.db'));
    rmSync(join(repo.stateDir, 'manifest.db-wal'), { force: true });
    rmSync(join(repo.stateDir, 'manifest.db-shm'), { force: true });
    const r = await repo.runJson<RebuildResult>(['manifest', 'rebuild']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.json.source, 'mirror');
    assert.deepEqual(r.json.unplaced, []);
    const again = await repo.runJson<{ error: { code: string } }>(['manifest', 'rebuild']);
    assert.equal(again.code, 9);
    assert.equal(again.json.error.code, 'MANIFEST_EXISTS');
    const forced = await repo.runJson<RebuildResult>(['manifest', 'rebuild', '--force']);
    assert.equal(forced.code, 0, forced.stderr);
    assert.ok(forced.json.movedAside && existsSync(forced.json.movedAside));
  });
});

describe('zbk doctor', () => {
  let repo: TestRepo;
  before(async () => {
    repo = await createRepo();
  });
  after(() => repo.cleanup());

  it('passes on a good setup (exit 0, no failed check)', async () => {
    const r = await repo.runJson<DoctorResult>(['doctor']);
    assert.equal(r.code, 0, JSON.stringify(r.json.checks.filter((c) => c.status === 'fail')));
    assert.equal(r.json.ok, true);
    for (const name of ['config file', 'passphrase source', 'store', 'key file', 'manifest', 'orphan uploads']) assert.equal(status(r.json, name), 'ok', name);
    const human = await repo.run(['doctor']);
    assert.equal(human.code, 0);
    assert.match(human.stdout, /0 failed/);
  });

  it('fails when the config is readable by others, with the chmod fix', async () => {
    chmodSync(repo.configPath, 0o644);
    try {
      const r = await repo.runJson<DoctorResult>(['doctor']);
      assert.equal(r.code, 1);
      const c = r.json.checks.find((x) => x.name === 'config file');
      assert.equal(c?.status, 'fail');
      assert.equal(c?.fix, `chmod 600 ${repo.configPath}`);
    } finally {
      chmodSync(repo.configPath, 0o600);
    }
  });

  it('fails on a wrong passphrase and on a passphrase file readable by others', async () => {
    const wrong = join(repo.dir, 'wrong');
    writeFileSync(wrong, 'not the passphrase at all\n', { mode: 0o600 });
    const r = await repo.runJson<DoctorResult>(['doctor'], { ZBK_PASSPHRASE_FILE: wrong });
    assert.equal(r.code, 1);
    assert.equal(status(r.json, 'key file'), 'fail');
    chmodSync(wrong, 0o644);
    const open = await repo.runJson<DoctorResult>(['doctor'], { ZBK_PASSPHRASE_FILE: wrong });
    assert.equal(status(open.json, 'passphrase source'), 'fail');
  });

  it('fails when the key file is missing from the store', async () => {
    const key = join(repo.storeDir, 'zbk.key');
    renameSync(key, `${key}.away`);
    try {
      const r = await repo.runJson<DoctorResult>(['doctor']);
      assert.equal(r.code, 1);
      assert.equal(status(r.json, 'store'), 'ok');
      const c = r.json.checks.find((x) => x.name === 'key file');
      assert.equal(c?.status, 'fail');
      assert.match(c?.fix ?? '', /zbk key import/);
    } finally {
      renameSync(`${key}.away`, key);
    }
  });

  it('fails on an unreachable S3 endpoint, and never prints the webhook URL', async () => {
    const port = await deadPort();
    const cfg = join(repo.dir, 's3.toml');
    writeFileSync(
      cfg,
      [
        `state_dir = "${repo.stateDir}"`,
        '[store]',
        'url = "s3://zbk-test-bucket/p"',
        `endpoint = "http://127.0.0.1:${port}"`,
        'region = "us-east-1"',
        'path_style = true',
        '[hooks]',
        `on_success = "${WEBHOOK}"`,
        '',
      ].join('\n'),
      { mode: 0o600 },
    );
    const env = { ZBK_CONFIG: cfg, AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test', AWS_EC2_METADATA_DISABLED: 'true' };
    const r = await repo.runJson<DoctorResult>(['doctor'], env);
    assert.equal(r.code, 1);
    assert.equal(status(r.json, 'store'), 'fail');
    assert.equal(status(r.json, 'manifest'), 'skip');
    const human = await repo.run(['doctor'], env);
    assert.equal(human.code, 1);
    assert.match(human.stdout, /FAIL {2}store/);
    for (const out of [human.stdout, human.stderr, JSON.stringify(r.json), r.stderr]) {
      assert.ok(!out.includes('secret-token'), 'webhook URL leaked');
      assert.ok(!out.includes(PASSPHRASE), 'passphrase leaked');
    }
  });
});
