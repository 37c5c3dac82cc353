/**
 * `zbk key import` on a repository whose key file still works adds a slot
 * (the other machines' passphrase keeps opening it) and never silently
 * replaces it: a full key file is refused (KEY_FILE_WORKS, exit 2) unless
 * --force, which replaces it and keeps the old one aside.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { addPassphraseSlot, listSlots, loadSodium, MAX_SLOTS, openKeyFile } from '../../src/crypto/index.js';
import { WrongPassphraseError } from '../../src/errors.js';
import type { KeyWriteResult } from '../../src/services/key.js';
import { LocalStore } from '../../src/store/local-store.js';
import { PASSPHRASE, createRepo } from './helpers.js';

const IMPORTED = 'lantern harbour copper finch 8';

test('key import onto a working key file adds a slot; a full one is refused without --force; --force replaces it, kept aside', async (t) => {
  const so = await loadSodium();
  const repo = await createRepo();
  t.after(() => repo.cleanup());
  const store = new LocalStore(repo.storeDir);
  const exp = await repo.run(['key', 'export']);
  assert.equal(exp.code, 0, exp.stderr);
  const paper = join(repo.dir, 'paper.txt');
  writeFileSync(paper, exp.stdout, { mode: 0o600 });
  const newFile = join(repo.dir, 'imported-pass');
  writeFileSync(newFile, `${IMPORTED}\n`, { mode: 0o600 });
  const importArgs = ['key', 'import', '--file', paper, '--new-passphrase-file', newFile, '--kdf', 'min'];

  const original = await store.getBytes('zbk.key');
  const added = await repo.runJson<KeyWriteResult>(importArgs);
  assert.equal(added.code, 0, added.stderr);
  assert.match(added.json.slotAdded ?? '', /^[0-9a-f]{8}$/);
  assert.equal(added.json.previousKeptAs, null, 'nothing replaced, nothing kept aside');
  const two = await store.getBytes('zbk.key');
  assert.deepEqual(listSlots(two).map((s) => s.id), [...listSlots(original).map((s) => s.id), added.json.slotAdded]);
  await openKeyFile(so, two, PASSPHRASE); // the other machines' passphrase still opens it
  await openKeyFile(so, two, IMPORTED);
  assert.equal((await repo.run(['verify'])).code, 0, 'this machine (old passphrase) keeps working');
  assert.equal((await repo.run(['verify'], { ZBK_PASSPHRASE_FILE: newFile })).code, 0, 'and the imported passphrase works');
  assert.deepEqual([...(await keys(store))], ['zbk.key'], 'no zbk.key.next, no replaced file');

  // All 16 slots taken: no slot can be added, and the working file is not replaced without --force.
  let full = two;
  for (let i = listSlots(full).length; i < MAX_SLOTS; i++) full = (await addPassphraseSlot(so, full, PASSPHRASE, `machine ${i}`, { params: 'min' })).keyFile;
  await store.put('zbk.key', full);
  const refused = await repo.runJson<{ error: { code: string; message: string; exitCode: number } }>(importArgs);
  assert.equal(refused.code, 2, JSON.stringify(refused.json));
  assert.equal(refused.json.error.code, 'KEY_FILE_WORKS');
  assert.match(refused.json.error.message, /intact and has 16 slots.*zbk key passwd.*--force/);
  assert.ok(!refused.json.error.message.includes('\n'), 'one line');
  assert.deepEqual(await store.getBytes('zbk.key'), full, 'untouched');
  const human = await repo.run(importArgs);
  assert.equal(human.code, 2);
  assert.match(human.stderr, /^zbk: the store's key file .* --force/);

  const forced = await repo.runJson<KeyWriteResult>([...importArgs, '--force']);
  assert.equal(forced.code, 0, forced.stderr);
  assert.equal(forced.json.slotAdded, null);
  assert.match(forced.json.previousKeptAs ?? '', /^zbk\.key\.replaced-/);
  assert.deepEqual(await store.getBytes(forced.json.previousKeptAs!), full, 'the replaced file is kept byte for byte');
  const one = await store.getBytes('zbk.key');
  assert.equal(listSlots(one).length, 1);
  await openKeyFile(so, one, IMPORTED);
  await assert.rejects(openKeyFile(so, one, PASSPHRASE), WrongPassphraseError);
  assert.deepEqual([...(await keys(store))].sort(), ['zbk.key', forced.json.previousKeptAs]);
});

async function keys(store: LocalStore): Promise<Set<string>> {
  const out = new Set<string>();
  for await (const e of store.list('zbk.key')) out.add(e.key);
  return out;
}
