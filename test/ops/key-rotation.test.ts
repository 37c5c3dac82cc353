/**
 * `zbk key passwd` leaves nothing in the store that the old passphrase
 * opens: no zbk.key.prev is written, one left by older zbk (and kept files
 * of this key) are deleted, the new file is confirmed in zbk.key.next before
 * it replaces zbk.key, and a crash at any step leaves either the old file in
 * zbk.key (the change not done) or the new one with nothing of the old
 * passphrase beside it. Data pushed before still restores.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { createKeyFile, keyFileKeyId, loadSodium, openKeyFile, type SodiumBackend } from '../../src/crypto/index.js';
import { WrongPassphraseError } from '../../src/errors.js';
import type { DeepVerifyResult } from '../../src/services/verify-deep.js';
import type { KeyWriteResult } from '../../src/services/key.js';
import { LocalStore } from '../../src/store/local-store.js';
import { createTestPool, requireZfs, writeRandomFiles } from '../helpers/pool.js';
import { PASSPHRASE, createRepo, type TestRepo } from './helpers.js';

const NEW_PASSPHRASE = 'violet kettle on a moonlit pier 61';
const THIRD_PASSPHRASE = 'seventeen quiet walruses disagree';

/** Every key-file-like object in the store (`zbk.key*`), by key. */
async function keyFiles(store: LocalStore): Promise<Map<string, Uint8Array>> {
  const out = new Map<string, Uint8Array>();
  for await (const e of store.list('zbk.key')) out.set(e.key, await store.getBytes(e.key));
  return out;
}

/** Assert that `pass` opens none of `files` (the names of those it would open are the failure). */
async function opensNone(so: SodiumBackend, files: Map<string, Uint8Array>, pass: string, what: string): Promise<void> {
  const opened: string[] = [];
  for (const [key, bytes] of files) {
    try {
      await openKeyFile(so, bytes, pass);
      opened.push(key);
    } catch (err) {
      if (!(err instanceof WrongPassphraseError)) throw err;
    }
  }
  assert.deepEqual(opened, [], `${what} opens these: ${opened.join(', ')}`);
}

function passFile(repo: TestRepo, name: string, pass: string): string {
  const path = join(repo.dir, name);
  writeFileSync(path, `${pass}\n`, { mode: 0o600 });
  return path;
}

test('key passwd: no zbk.key* object opens with the old passphrase afterwards (zbk.key.prev and kept files of this key deleted, other keys\' kept), the new one opens zbk.key, data pushed before restores', async (t) => {
  if (!requireZfs(t)) return;
  const so = await loadSodium();
  const pool = await createTestPool({ sizeMiB: 256 });
  t.after(() => pool.destroy());
  const ds = `${pool.name}/photos`;
  await pool.zfs.createDataset(ds);
  writeRandomFiles((await pool.zfs.mountpoint(ds))!, { files: 3, bytesEach: 400_000, seed: 'rotate' });
  await pool.zfs.snapshot(`${ds}@a`);
  const repo = await createRepo({ datasets: [ds] });
  t.after(() => repo.cleanup());
  const pushed = await repo.run(['push', ds]);
  assert.equal(pushed.code, 0, pushed.stderr);

  const store = new LocalStore(repo.storeDir);
  const before = await store.getBytes('zbk.key');
  const keyId = keyFileKeyId(before);
  // What older zbk left: zbk.key.prev (this key, the previous passphrase), and a file of this key
  // kept by `key import --force`; plus the kept key file of another repository (another master key).
  await store.put('zbk.key.prev', before);
  await store.put('zbk.key.replaced-20250101T000000000Z', before);
  const foreign = (await createKeyFile(so, 'an older repository entirely 93', { params: 'min' })).keyFile;
  await store.put('zbk.key.replaced-20240101T000000000Z', foreign);

  const newFile = passFile(repo, 'new-pass', NEW_PASSPHRASE);
  const r = await repo.runJson<KeyWriteResult>(['key', 'passwd', '--new-passphrase-file', newFile, '--kdf', 'min']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.json.previousKeptAs, null);
  assert.deepEqual([...r.json.removed].sort(), ['zbk.key.prev', 'zbk.key.replaced-20250101T000000000Z']);

  const after = await keyFiles(store);
  assert.deepEqual([...after.keys()].sort(), ['zbk.key', 'zbk.key.replaced-20240101T000000000Z'], 'no zbk.key.prev, no zbk.key.next');
  assert.deepEqual(after.get('zbk.key.replaced-20240101T000000000Z'), foreign, 'another key\'s kept file is left alone');
  await opensNone(so, after, PASSPHRASE, 'the old passphrase');
  assert.equal((await openKeyFile(so, after.get('zbk.key')!, NEW_PASSPHRASE)).keyId, keyId, 'the new passphrase opens the key file, same master key');

  // The old passphrase opens nothing through zbk either; the new one restores what was pushed before.
  const old = await repo.run(['push', ds]);
  assert.equal(old.code, 4, old.stderr);
  const deep = await repo.runJson<DeepVerifyResult>(['verify', '--deep'], { ZBK_PASSPHRASE_FILE: newFile });
  assert.equal(deep.code, 0, deep.stderr);
  assert.equal(deep.json.outcome, 'verified');
  assert.equal(deep.json.snapshot, 'a');
});

test('key passwd killed mid-way: before zbk.key is replaced the old file still works; after, nothing opens with the old passphrase; the next passwd clears zbk.key.next', async (t) => {
  const so = await loadSodium();
  const repo = await createRepo();
  t.after(() => repo.cleanup());
  const store = new LocalStore(repo.storeDir);
  const original = await store.getBytes('zbk.key');
  await store.put('zbk.key.prev', original); // as older zbk left it
  const newFile = passFile(repo, 'new-pass', NEW_PASSPHRASE);
  const passwd = ['key', 'passwd', '--new-passphrase-file', newFile, '--kdf', 'min'];

  // Killed once zbk.key.next is confirmed: zbk.key untouched (old passphrase), the staged file opens with the new one only.
  const k1 = await repo.run(passwd, { ZBK_CRASH_AT: 'key-next-confirmed' });
  assert.notEqual(k1.code, 0, 'killed');
  let files = await keyFiles(store);
  assert.deepEqual(files.get('zbk.key'), original);
  assert.ok(files.has('zbk.key.next'));
  await openKeyFile(so, files.get('zbk.key.next')!, NEW_PASSPHRASE);
  await opensNone(so, new Map([['zbk.key.next', files.get('zbk.key.next')!]]), PASSPHRASE, 'the old passphrase');
  assert.equal((await repo.run(['verify'])).code, 0, 'the repository opens with the old passphrase: the change did not happen');

  // Killed right after zbk.key is replaced: it opens with the new passphrase, and no zbk.key* with the old one.
  const k2 = await repo.run(passwd, { ZBK_CRASH_AT: 'key-file-replaced' });
  assert.notEqual(k2.code, 0, 'killed');
  files = await keyFiles(store);
  assert.ok(!files.has('zbk.key.prev'), 'zbk.key.prev went before zbk.key was replaced');
  await openKeyFile(so, files.get('zbk.key')!, NEW_PASSPHRASE);
  await opensNone(so, files, PASSPHRASE, 'the old passphrase');

  const third = passFile(repo, 'third-pass', THIRD_PASSPHRASE);
  const r = await repo.run(['key', 'passwd', '--new-passphrase-file', third, '--kdf', 'min'], { ZBK_PASSPHRASE_FILE: newFile });
  assert.equal(r.code, 0, r.stderr);
  files = await keyFiles(store);
  assert.deepEqual([...files.keys()], ['zbk.key']);
  await opensNone(so, files, NEW_PASSPHRASE, 'the previous passphrase');
  assert.equal((await repo.run(['verify'], { ZBK_PASSPHRASE_FILE: third })).code, 0);
});
