import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { KeyFileError, UsageError, WrongPassphraseError, ZbkError } from '../../src/errors.js';
import {
  addPassphraseSlot,
  changePassphrase,
  createKeyFile,
  exportPaperKey,
  importPaperKey,
  isTestOnlyKdf,
  keyFileKeyId,
  listSlots,
  MAX_MEMLIMIT,
  MAX_OPSLIMIT,
  MAX_SLOTS,
  openKeyFile,
  paperKeyId,
  removeSlot,
} from '../../src/crypto/keyfile.js';
import type { SodiumBackend } from '../../src/crypto/sodium.js';
import { keyringFromMasterKey } from '../../src/crypto/keyring.js';
import { backends, ctx, plaintext } from './helpers.js';

const PASS = 'correct horse battery staple';
const cheap = { params: 'min' as const };

let be: Awaited<ReturnType<typeof backends>>;
before(async () => {
  be = await backends();
});

function edit(keyFile: Uint8Array, f: (o: Record<string, unknown>) => void): Uint8Array {
  const o = JSON.parse(Buffer.from(keyFile).toString('utf8')) as Record<string, unknown>;
  f(o);
  return new Uint8Array(Buffer.from(JSON.stringify(o)));
}

async function rejectsWith(p: Promise<unknown>, cls: typeof ZbkError, code: string, secret = PASS): Promise<ZbkError> {
  let caught: unknown;
  await p.then(() => assert.fail(`expected ${code}`), (e: unknown) => (caught = e));
  assert.ok(caught instanceof cls, `expected ${cls.name}, got ${String(caught)}`);
  const e = caught as ZbkError;
  assert.equal(e.code, code);
  assert.ok(!e.message.includes(secret), 'passphrase leaked into the error message');
  return e;
}

describe('key file', () => {
  it('is versioned UTF-8 JSON with a 16-hex key id; defaults to at least MODERATE', async () => {
    const { keyFile, keyring, masterKey } = await createKeyFile(be.native, PASS, cheap);
    const o = JSON.parse(Buffer.from(keyFile).toString('utf8')) as { format: string; version: number; keyId: string; slots: unknown[] };
    assert.equal(o.format, 'zbk-keyfile');
    assert.equal(o.version, 1);
    assert.match(o.keyId, /^[0-9a-f]{16}$/);
    assert.equal(o.keyId, keyring.keyId);
    assert.equal(keyringFromMasterKey(be.wasm, masterKey).keyId, keyring.keyId);
    assert.ok(!Buffer.from(keyFile).includes(Buffer.from(masterKey).toString('base64')));
    assert.equal(keyFileKeyId(keyFile), o.keyId);
  });

  it('default parameters are libsodium MODERATE (opslimit 3, 256 MiB)', async () => {
    const { keyFile } = await createKeyFile(be.native, PASS);
    const [s] = listSlots(keyFile);
    assert.ok(s!.opslimit >= 3 && s!.memlimit >= 256 * 1024 * 1024);
  });

  it('created by one backend, opened by the other; data sealed before opens after', async () => {
    for (const [a, b] of be.pairs) {
      const { keyFile, keyring } = await createKeyFile(a, PASS, cheap);
      const sealed = keyring.sealPart(ctx(0), plaintext(1000));
      const k2 = await openKeyFile(b, keyFile, PASS);
      assert.equal(k2.keyId, keyring.keyId);
      assert.deepEqual(k2.openPart(ctx(0), sealed), plaintext(1000));
    }
  });

  it('wrong passphrase → WrongPassphraseError, passphrase never echoed', async () => {
    const { keyFile } = await createKeyFile(be.native, PASS, cheap);
    await rejectsWith(openKeyFile(be.wasm, keyFile, 'Tr0ub4dor&3'), WrongPassphraseError, 'WRONG_PASSPHRASE', 'Tr0ub4dor&3');
  });

  it('passphrases are NFC-normalised (composed and decomposed forms both open)', async () => {
    const composed = 'caf\u00e9 cr\u00e8me';
    const { keyFile } = await createKeyFile(be.native, composed, cheap);
    await openKeyFile(be.wasm, keyFile, composed.normalize('NFD'));
  });

  it('empty passphrase is refused', async () => {
    await assert.rejects(createKeyFile(be.native, '', cheap), UsageError);
  });

  it('corruption: bad JSON, wrong format, unknown version, bad fields → KEY_FILE_CORRUPT', async () => {
    const { keyFile } = await createKeyFile(be.native, PASS, cheap);
    const cases: [string, Uint8Array][] = [
      ['bad JSON', keyFile.subarray(0, keyFile.length - 5)],
      ['not UTF-8', new Uint8Array([0xff, 0xfe, 0x7b, 0x7d])],
      ['array', new Uint8Array(Buffer.from('[]'))],
      ['format', edit(keyFile, (o) => (o.format = 'something-else'))],
      ['version 2', edit(keyFile, (o) => (o.version = 2))],
      ['version string', edit(keyFile, (o) => (o.version = '1'))],
      ['keyId', edit(keyFile, (o) => (o.keyId = 'xyz'))],
      ['no slots', edit(keyFile, (o) => (o.slots = []))],
      ['too many slots', edit(keyFile, (o) => (o.slots = Array.from({ length: 17 }, (_, i) => ({ ...(o.slots as Record<string, unknown>[])[0]!, id: i.toString(16).padStart(8, '0') }))))],
      ['salt', edit(keyFile, (o) => ((o.slots as Record<string, Record<string, unknown>>[])[0]!.kdf!.salt = 'AAAA'))],
      ['alg', edit(keyFile, (o) => ((o.slots as Record<string, Record<string, unknown>>[])[0]!.kdf!.alg = 'scrypt'))],
      ['huge memlimit', edit(keyFile, (o) => ((o.slots as Record<string, Record<string, unknown>>[])[0]!.kdf!.memlimit = 2 ** 40))],
      ['wrapped key length', edit(keyFile, (o) => ((o.slots as Record<string, unknown>[])[0]!.wrappedKey = 'AAAA'))],
    ];
    for (const [what, bytes] of cases) {
      const e = await rejectsWith(openKeyFile(be.native, bytes, PASS), KeyFileError, 'KEY_FILE_CORRUPT');
      assert.ok(e.message.length > 10, what);
      if (what.startsWith('version')) assert.match(e.message, /version/);
    }
  });

  it('flipped byte in the wrapped key, nonce or salt, or a changed keyId → cannot open (WrongPassphraseError)', async () => {
    const { keyFile } = await createKeyFile(be.native, PASS, cheap);
    const flipB64 = (s: string, i: number): string => {
      const b = Buffer.from(s, 'base64');
      b[i]! ^= 0x80;
      return b.toString('base64');
    };
    type S = { wrappedKey: string; nonce: string; kdf: { salt: string }; id: string };
    const mutations: ((s: S, o: Record<string, unknown>) => void)[] = [
      (s) => (s.wrappedKey = flipB64(s.wrappedKey, 0)),
      (s) => (s.wrappedKey = flipB64(s.wrappedKey, 40)),
      (s) => (s.nonce = flipB64(s.nonce, 3)),
      (s) => (s.kdf.salt = flipB64(s.kdf.salt, 7)),
      (s) => (s.id = '00000000'),
      (_s, o) => (o.keyId = '0000000000000000'),
    ];
    for (const m of mutations) {
      const bad = edit(keyFile, (o) => m((o.slots as S[])[0]!, o));
      await rejectsWith(openKeyFile(be.wasm, bad, PASS), WrongPassphraseError, 'WRONG_PASSPHRASE');
    }
  });

  it('changePassphrase: new opens, old fails, data sealed before still opens, other slots untouched', async () => {
    const { keyFile, keyring } = await createKeyFile(be.native, PASS, cheap);
    const { keyFile: two } = await addPassphraseSlot(be.native, keyFile, PASS, 'second', cheap);
    const sealed = keyring.sealPart(ctx(2, { final: true }), plaintext(5000));
    const changed = await changePassphrase(be.wasm, two, PASS, 'new pass', cheap);
    assert.deepEqual(listSlots(changed).map((s) => s.id), listSlots(two).map((s) => s.id));
    const k = await openKeyFile(be.native, changed, 'new pass');
    assert.deepEqual(k.openPart(ctx(2, { final: true }), sealed), plaintext(5000));
    await rejectsWith(openKeyFile(be.native, changed, PASS), WrongPassphraseError, 'WRONG_PASSPHRASE');
    assert.equal((await openKeyFile(be.native, changed, 'second')).keyId, keyring.keyId);
    await rejectsWith(changePassphrase(be.native, changed, PASS, 'x', cheap), WrongPassphraseError, 'WRONG_PASSPHRASE');
  });

  it('addPassphraseSlot / removeSlot; the last slot cannot be removed', async () => {
    const { keyFile } = await createKeyFile(be.native, PASS, cheap);
    const { keyFile: two, slotId } = await addPassphraseSlot(be.native, keyFile, PASS, 'second', cheap);
    assert.equal(listSlots(two).length, 2);
    const one = await removeSlot(be.native, two, PASS, slotId);
    await rejectsWith(openKeyFile(be.native, one, 'second'), WrongPassphraseError, 'WRONG_PASSPHRASE', 'second');
    await assert.rejects(removeSlot(be.native, one, PASS, listSlots(one)[0]!.id), UsageError);
  });
});

/** `sodium` with Argon2id replaced by a failure that records it was called. */
function noArgon2(sodium: SodiumBackend): { backend: SodiumBackend; calls: () => number } {
  let n = 0;
  const backend = Object.create(sodium) as SodiumBackend;
  backend.pwhashArgon2id = () => {
    n++;
    return Promise.reject(new Error('Argon2id ran on a key file that should have been refused unrun'));
  };
  return { backend, calls: () => n };
}

describe('key file reader caps', () => {
  it('are what --kdf writes at most (moderate: opslimit 3, 256 MiB)', () => {
    assert.equal(MAX_OPSLIMIT, 3);
    assert.equal(MAX_MEMLIMIT, 256 * 1024 * 1024);
  });

  it('a slot costing more (opslimit 4, 64 or 1000; memlimit 256 MiB + 1 KiB, 1, 4 or 8 GiB) is KEY_FILE_CORRUPT before any Argon2id runs', async () => {
    const { keyFile } = await createKeyFile(be.native, PASS, cheap);
    const { keyFile: two } = await addPassphraseSlot(be.native, keyFile, PASS, 'second slot words', cheap);
    const GiB = 1024 ** 3;
    const costs: [string, number | null, number | null][] = [
      ['opslimit 4 (libsodium SENSITIVE)', 4, null],
      ['opslimit 64', 64, null],
      ['opslimit 1000', 1000, null],
      ['memlimit 256 MiB + 1 KiB', null, 256 * 1024 * 1024 + 1024],
      ['memlimit 1 GiB', null, GiB],
      ['memlimit 4 GiB', null, 4 * GiB],
      ['memlimit 8 GiB', null, 8 * GiB],
    ];
    for (const [what, ops, mem] of costs) {
      // The costly slot is the second: the first (good, cheap) one must not be tried either.
      const bad = edit(two, (o) => {
        const kdf = (o.slots as Record<string, Record<string, unknown>>[])[1]!.kdf!;
        if (ops !== null) kdf.opslimit = ops;
        if (mem !== null) kdf.memlimit = mem;
      });
      const spy = noArgon2(be.native);
      const e = await rejectsWith(openKeyFile(spy.backend, bad, PASS), KeyFileError, 'KEY_FILE_CORRUPT');
      assert.match(e.message, /slot 1: Argon2id cost out of range .*opslimit 1–3, memlimit 8192–268435456/, what);
      assert.equal(spy.calls(), 0, `${what}: no Argon2id run`);
      await rejectsWith(changePassphrase(spy.backend, bad, PASS, 'x y z w', cheap), KeyFileError, 'KEY_FILE_CORRUPT');
      assert.equal(spy.calls(), 0);
    }
    // At the caps exactly: accepted (the slot is tried; here the spy stops it).
    const atCap = edit(keyFile, (o) => Object.assign((o.slots as Record<string, Record<string, unknown>>[])[0]!.kdf!, { opslimit: 3, memlimit: 256 * 1024 * 1024 }));
    const spy = noArgon2(be.native);
    await assert.rejects(openKeyFile(spy.backend, atCap, PASS), /Argon2id ran/);
    assert.equal(spy.calls(), 1);
  });

  it('zbk never writes a slot its readers refuse: explicit costs above the caps are KDF_PARAMS', async () => {
    for (const params of [{ opslimit: 4, memlimit: 8192 }, { opslimit: 1, memlimit: 1024 ** 3 }]) {
      await rejectsWith(createKeyFile(be.native, PASS, { params }), UsageError, 'KDF_PARAMS');
    }
  });

  it('test-only costs: min and explicit values below INTERACTIVE', () => {
    assert.equal(isTestOnlyKdf('min'), true);
    assert.equal(isTestOnlyKdf({ opslimit: 1, memlimit: 8192 }), true);
    assert.equal(isTestOnlyKdf({ opslimit: 2, memlimit: 64 * 1024 * 1024 }), false);
    for (const p of ['moderate', 'interactive', undefined] as const) assert.equal(isTestOnlyKdf(p), false);
  });
});

describe('paper key', () => {
  it('export → import round trip with a new passphrase, across backends', async () => {
    const { keyFile, keyring } = await createKeyFile(be.native, PASS, cheap);
    const text = await exportPaperKey(be.native, keyFile, PASS);
    assert.match(text, new RegExp(`key id: ${keyring.keyId}`));
    const sealed = keyring.sealPart(ctx(0), plaintext(77));
    const { keyFile: restored, keyring: k2 } = await importPaperKey(be.wasm, text, 'fresh pass', cheap);
    assert.equal(k2.keyId, keyring.keyId);
    assert.deepEqual(k2.openPart(ctx(0), sealed), plaintext(77));
    assert.equal((await openKeyFile(be.native, restored, 'fresh pass')).keyId, keyring.keyId);
  });

  it('is lenient about case, spacing, hyphens and 0/1/8 look-alikes', async () => {
    const { keyFile, keyring } = await createKeyFile(be.native, PASS, cheap);
    const text = await exportPaperKey(be.native, keyFile, PASS);
    const sloppy = text
      .split('\n')
      .map((l) => (/^(\d|check):/.test(l) ? `  ${l.toLowerCase().replace(/-/g, ' ').replace(/o/g, '0').replace(/i/g, '1').replace(/b/g, '8')}` : l))
      .join('\r\n');
    assert.notEqual(sloppy, text);
    const { keyring: k2 } = await importPaperKey(be.native, sloppy, 'p', cheap);
    assert.equal(k2.keyId, keyring.keyId);
  });

  it('a typo is caught and the line named; missing lines and a bad check line too', async () => {
    const { keyFile } = await createKeyFile(be.native, PASS, cheap);
    const text = await exportPaperKey(be.native, keyFile, PASS);
    const lines = text.split('\n');
    for (let n = 1; n <= 4; n++) {
      const idx = lines.findIndex((l) => l.startsWith(`${n}: `));
      const l = lines[idx]!;
      const pos = l.length - 3;
      const swapped = l[pos] === 'A' ? 'B' : 'A';
      const typo = [...lines];
      typo[idx] = l.slice(0, pos) + swapped + l.slice(pos + 1);
      const e = await rejectsWith(importPaperKey(be.native, typo.join('\n'), 'p', cheap), KeyFileError, 'PAPER_KEY_CHECKSUM');
      assert.match(e.message, new RegExp(`line ${n}`));
    }
    const swappedLines = lines.map((l) => (l.startsWith('1: ') ? l.replace('1: ', '2: ') : l.startsWith('2: ') ? l.replace('2: ', '1: ') : l));
    await rejectsWith(importPaperKey(be.native, swappedLines.join('\n'), 'p', cheap), KeyFileError, 'PAPER_KEY_CHECKSUM');
    const noLine3 = lines.filter((l) => !l.startsWith('3: ')).join('\n');
    await rejectsWith(importPaperKey(be.native, noLine3, 'p', cheap), KeyFileError, 'PAPER_KEY_FORMAT');
    const badCheck = lines.map((l) => (l.startsWith('check: ') ? 'check: AAAA-AAAA' : l)).join('\n');
    await rejectsWith(importPaperKey(be.native, badCheck, 'p', cheap), KeyFileError, 'PAPER_KEY_CHECKSUM');
    const badId = lines.map((l) => (l.startsWith('key id: ') ? 'key id: 0000000000000000' : l)).join('\n');
    await rejectsWith(importPaperKey(be.native, badId, 'p', cheap), KeyFileError, 'PAPER_KEY_CHECKSUM');
  });

  it('import onto a key file of the same key adds a slot: the other slots keep opening; another key id or a full file is refused', async () => {
    const { keyFile, keyring } = await createKeyFile(be.native, PASS, cheap);
    const text = await exportPaperKey(be.native, keyFile, PASS);
    assert.equal(paperKeyId(be.wasm, text), keyring.keyId);
    const { keyFile: more, slotId } = await importPaperKey(be.wasm, text, 'fresh pass words', { ...cheap, addTo: keyFile });
    assert.deepEqual(listSlots(more).map((s) => s.id), [...listSlots(keyFile).map((s) => s.id), slotId]);
    assert.equal((await openKeyFile(be.native, more, PASS)).keyId, keyring.keyId, 'the old slot still opens');
    assert.equal((await openKeyFile(be.native, more, 'fresh pass words', { slotId })).keyId, keyring.keyId);
    await rejectsWith(openKeyFile(be.native, more, PASS, { slotId }), WrongPassphraseError, 'WRONG_PASSPHRASE');

    const { keyFile: other } = await createKeyFile(be.native, PASS, cheap);
    await rejectsWith(importPaperKey(be.native, text, 'fresh pass words', { ...cheap, addTo: other }), KeyFileError, 'KEY_MISMATCH');
    let full = keyFile;
    for (let i = 1; i < MAX_SLOTS; i++) full = (await addPassphraseSlot(be.native, full, PASS, `pass ${i}`, cheap)).keyFile;
    await rejectsWith(importPaperKey(be.native, text, 'fresh pass words', { ...cheap, addTo: full }), UsageError, 'TOO_MANY_SLOTS');
  });

  it('export needs the right passphrase', async () => {
    const { keyFile } = await createKeyFile(be.native, PASS, cheap);
    await rejectsWith(exportPaperKey(be.native, keyFile, 'nope'), WrongPassphraseError, 'WRONG_PASSPHRASE', 'nope');
  });
});
