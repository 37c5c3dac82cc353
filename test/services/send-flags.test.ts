/**
 * The send flags of a new stream, and a recorded flag list turned back into
 * send options (src/services/push/send-flags.ts). Pure decisions over the
 * capabilities and the dataset's encryption, which is asked only when needed.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, OperationError } from '../../src/errors.js';
import { chooseSendFlags, legacySendFlags, rawForNewChain, sendOptionsFor } from '../../src/services/push/send-flags.js';
import { openzfsCaps, zfsFuseCaps } from '../helpers/capabilities.js';

const openzfs = openzfsCaps;
const fuse = zfsFuseCaps;

/** `zfs get encryption`, counted. */
function encryption(encrypted: boolean): { isEncrypted: (ds: string) => Promise<boolean>; asked: string[] } {
  const asked: string[] = [];
  return { asked, isEncrypted: async (ds) => (asked.push(ds), encrypted) };
}

const isCode = (cls: typeof ConfigError | typeof OperationError, code: string, msg: RegExp) => (e: unknown) => e instanceof cls && e.code === code && msg.test(e.message);

describe('send flags of a new chain (full stream)', () => {
  it('auto: -w for a natively encrypted dataset where the ZFS can send raw, plus -c -L -e where supported', async () => {
    assert.deepEqual(await chooseSendFlags(encryption(true), openzfs, 'tank/enc', 'auto', null), { flags: ['-w', '-c', '-L', '-e'], fullBecause: null });
    assert.deepEqual(await chooseSendFlags(encryption(false), openzfs, 'tank/plain', 'auto', null), { flags: ['-c', '-L', '-e'], fullBecause: null });
    const e = encryption(true);
    assert.deepEqual(await chooseSendFlags(e, fuse, 'tank/x', 'auto', null), { flags: [], fullBecause: null });
    assert.deepEqual(e.asked, [], 'without raw sends the encryption is not asked');
    assert.deepEqual(await chooseSendFlags(encryption(true), { ...openzfs, largeBlocks: false }, 'tank/enc', 'auto', null), { flags: ['-w', '-c', '-e'], fullBecause: null });
  });

  it('raw = false never sends -w; raw = true where impossible is a config error that says why', async () => {
    const e = encryption(true);
    assert.deepEqual((await chooseSendFlags(e, openzfs, 'tank/enc', false, null)).flags, ['-c', '-L', '-e']);
    assert.deepEqual(e.asked, []);
    assert.deepEqual((await chooseSendFlags(encryption(true), openzfs, 'tank/enc', true, null)).flags, ['-w', '-c', '-L', '-e']);
    await assert.rejects(rawForNewChain(encryption(true), fuse, 'tank/x', true), isCode(ConfigError, 'RAW_SEND_UNAVAILABLE', /tank\/x: raw = true .* zfs-fuse cannot send raw \(zfs send -w\)/));
    await assert.rejects(chooseSendFlags(encryption(false), openzfs, 'tank/plain', true, null), isCode(ConfigError, 'RAW_SEND_NOT_ENCRYPTED', /tank\/plain: raw = true .* not natively encrypted/));
  });
});

describe('send flags of an incremental', () => {
  it('auto keeps the raw-ness of the stream it builds on, without asking about encryption', async () => {
    const e = encryption(true);
    assert.deepEqual(await chooseSendFlags(e, openzfs, 'tank/enc', 'auto', false), { flags: ['-c', '-L', '-e'], fullBecause: null }, 'a chain an older zbk sent decrypted stays so');
    assert.deepEqual(await chooseSendFlags(e, openzfs, 'tank/enc', 'auto', true), { flags: ['-w', '-c', '-L', '-e'], fullBecause: null });
    assert.deepEqual(e.asked, []);
    const lost = await chooseSendFlags(e, fuse, 'tank/enc', 'auto', true);
    assert.deepEqual(lost.flags, []);
    assert.match(lost.fullBecause ?? '', /chain was sent raw \(-w\) and zfs-fuse cannot send raw/);
  });

  it('an explicit raw setting that disagrees with the chain starts a new one (full), saying why', async () => {
    const toRaw = await chooseSendFlags(encryption(true), openzfs, 'tank/enc', true, false);
    assert.deepEqual(toRaw.flags, ['-w', '-c', '-L', '-e']);
    assert.match(toRaw.fullBecause ?? '', /raw = true in the config, but its chain was sent without -w/);
    const fromRaw = await chooseSendFlags(encryption(true), openzfs, 'tank/enc', false, true);
    assert.deepEqual(fromRaw.flags, ['-c', '-L', '-e']);
    assert.match(fromRaw.fullBecause ?? '', /raw = false in the config, but its chain was sent raw \(-w\)/);
    assert.deepEqual(await chooseSendFlags(encryption(true), openzfs, 'tank/enc', true, true), { flags: ['-w', '-c', '-L', '-e'], fullBecause: null });
  });
});

describe('recorded flags back to send options', () => {
  it('a stream recorded without flags was sent with -c -L -e where supported, never -w', () => {
    assert.deepEqual(legacySendFlags(openzfs), ['-c', '-L', '-e']);
    assert.deepEqual(legacySendFlags(fuse), []);
  });

  it('exactly the recorded flags, or an OperationError naming what this ZFS cannot send', () => {
    assert.deepEqual(sendOptionsFor(['-w', '-c', '-L', '-e'], openzfs, 'x'), { raw: true, compressed: true, largeBlocks: true, embeddedData: true });
    assert.deepEqual(sendOptionsFor([], openzfs, 'x'), {}, 'flags the ZFS could add are not added');
    assert.deepEqual(sendOptionsFor(['-c'], openzfs, 'x'), { compressed: true });
    assert.throws(
      () => sendOptionsFor(['-w', '-c', '-L'], { ...fuse, compressedSend: true }, 'the upload of tank/a@s1'),
      isCode(OperationError, 'SEND_FLAGS_UNAVAILABLE', /the upload of tank\/a@s1 was started with "zfs send -w -c -L", and zfs-fuse cannot send -w, -L: .*not be the same bytes/),
    );
    assert.throws(() => sendOptionsFor(['-p'], openzfs, 'x'), isCode(OperationError, 'SEND_FLAGS_UNAVAILABLE', /-p \(not an option this zbk sends with\)/));
  });
});
