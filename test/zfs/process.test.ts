/**
 * Process handling without real ZFS: a recorder script stands in for zfs, so
 * we can prove what was (not) spawned and how failures surface.
 */
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';
import { after, before, test } from 'node:test';
import { PlaintextFeed } from '../../src/pipeline/download.js';
import { ZfsError } from '../../src/zfs/errors.js';
import { InvalidNameError } from '../../src/zfs/names.js';
import { Zfs } from '../../src/zfs/zfs.js';
import { zfsFuseCaps } from '../helpers/capabilities.js';

let dir: string;
let log: string;

function script(name: string, body: string): string {
  const p = join(dir, name);
  writeFileSync(p, `#!/bin/sh\nprintf '%s\\n' "$*" >> '${log}'\n${body}\n`);
  chmodSync(p, 0o755);
  return p;
}

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'zbk-zfs-proc-'));
  log = join(dir, 'calls.log');
});
after(() => rmSync(dir, { recursive: true, force: true }));

test('invalid names are rejected before any process starts', async () => {
  const rec = script('recorder', 'exit 0');
  const zfs = new Zfs({ zfs: [rec], zpool: [rec] });
  const bad = ['tank/a;rm -rf /', '-R', 'tank/../x', '', 'tank/a b'];
  for (const n of bad) {
    const snap = `${n}@s`;
    const calls: Array<() => Promise<unknown>> = [
      () => zfs.exists(n),
      () => zfs.listSnapshots(n),
      () => zfs.getSnapshot(snap),
      () => zfs.getSnapshot(n),
      () => zfs.createDataset(n),
      () => zfs.snapshot(snap),
      () => zfs.destroy(n),
      () => zfs.hold('zbk', snap),
      () => zfs.hold(n, 'tank/a@s'),
      () => zfs.release(n, 'tank/a@s'),
      () => zfs.userRefs(snap),
      () => zfs.mountpoint(n),
      () => zfs.receive(n, Readable.from([Buffer.from('x')])),
      () => zfs.estimateSendSize({ snapshot: snap }),
      async () => zfs.send({ snapshot: snap }),
      async () => zfs.send({ snapshot: 'tank/a@s', from: snap }),
    ];
    for (const [i, call] of calls.entries()) {
      await assert.rejects(call, InvalidNameError, `call #${i} accepted ${JSON.stringify(n)}`);
    }
  }
  assert.equal(existsSync(log), false, `something was spawned: ${existsSync(log) ? readFileSync(log, 'utf8') : ''}`);

  // Control: the recorder does record a valid call, so the check above can fail.
  assert.equal(await zfs.exists('tank/ok'), true);
  assert.match(readFileSync(log, 'utf8'), /^get -Hp -o value type tank\/ok$/m);
  rmSync(log, { force: true });
});

test('a send that dies halfway errors the stream instead of ending it', async () => {
  const bad = script('dies', "printf 'partial-stream-bytes'\necho 'cannot send tank/a@s: I/O error' >&2\nexit 1");
  const zfs = new Zfs({ zfs: [bad], zpool: [bad] });
  const s = zfs.send({ snapshot: 'tank/a@s' });
  const got: Buffer[] = [];
  const sink = new Writable({
    write(c: Buffer, _e, cb) {
      got.push(c);
      cb();
    },
  });
  await assert.rejects(pipeline(s.stream, sink), (e: unknown) => e instanceof ZfsError && /I\/O error/.test(e.message));
  await assert.rejects(s.done, (e: unknown) => {
    assert.ok(e instanceof ZfsError);
    assert.equal(e.exitStatus, 1);
    assert.match(e.stderrTail, /I\/O error/);
    assert.deepEqual(e.argv, [bad, 'send', 'tank/a@s']);
    return true;
  });
  rmSync(log, { force: true });
});

test('a missing zfs binary is ZFS_MISSING, for commands and for send', async () => {
  const zfs = new Zfs({ zfs: [join(dir, 'no-such-zfs')], zpool: [join(dir, 'no-such-zpool')] });
  await assert.rejects(zfs.exists('tank/a'), (e: unknown) => e instanceof ZfsError && e.code === 'ZFS_MISSING' && e.exitCode === 7);
  const s = zfs.send({ snapshot: 'tank/a@s' });
  s.stream.on('error', () => undefined);
  await assert.rejects(s.done, (e: unknown) => e instanceof ZfsError && e.code === 'ZFS_MISSING');
  assert.equal(s.stream.readableEnded, false, 'the stream must not look complete');
});

test('send with optional flags needs capabilities first, then drops unsupported ones', async () => {
  const rec = script('rec2', 'exit 0');
  const zfs = new Zfs({ zfs: [rec] });
  assert.throws(() => zfs.send({ snapshot: 'tank/a@s', compressed: true }), (e: unknown) => e instanceof ZfsError && e.code === 'ZFS_NOT_READY');
  const caps = { implementation: 'zfs-fuse', version: null, rawSend: false, compressedSend: false, largeBlocks: false, embeddedData: false, sendEstimate: false, resumeTokens: false, bookmarks: false, holdsList: false, listParsable: false } as const;
  const fuse = new Zfs({ zfs: [rec] }, { capabilities: { ...caps } });
  assert.deepEqual(fuse.send({ snapshot: 'tank/a@s', compressed: true, largeBlocks: true, from: 'tank/a@r' }).argv, [rec, 'send', '-i', 'tank/a@r', 'tank/a@s']);
  assert.throws(() => fuse.send({ snapshot: 'tank/a@s', from: 'tank/a#bm' }), (e: unknown) => e instanceof ZfsError && e.code === 'ZFS_UNSUPPORTED');
  assert.equal(await fuse.estimateSendSize({ snapshot: 'tank/a@s' }), null);
  assert.equal(await fuse.holds('tank/a@s'), null);
  const ozfs = new Zfs({ zfs: [rec] }, { capabilities: { ...caps, implementation: 'openzfs', version: '2.2.2', rawSend: true, compressedSend: true, largeBlocks: true, embeddedData: true, bookmarks: true } });
  const s = ozfs.send({ snapshot: 'tank/a@s', raw: true, compressed: true, largeBlocks: true, from: 'tank/a#bm' });
  assert.deepEqual(s.argv, [rec, 'send', '-w', '-c', '-L', '-i', 'tank/a#bm', 'tank/a@s']);
  await s.done;
  rmSync(log, { force: true });
});

test('receive: an input that fails while the receive is still starting rejects with its error, and zfs receive never runs', { timeout: 20_000 }, async () => {
  // `get` (the exists() check) says "no such dataset"; a `receive` would swallow its input and succeed.
  const fake = script('recv-fake', 'case "$1" in\n  get) echo "cannot open \'$6\': dataset does not exist" >&2; exit 1;;\n  receive) cat >/dev/null; exit 0;;\nesac\nexit 2');
  const zfs = new Zfs({ zfs: [fake] });

  // Failed while receive awaits its exists() check (the restore's abortLive in that window).
  const feed = new PlaintextFeed();
  const boom = new Error('download failed before zfs started');
  const done = zfs.receive('tank/dst', feed.readable);
  feed.fail(boom);
  await assert.rejects(done, (e: unknown) => e === boom);

  // Failed before receive was even called.
  const early = new PlaintextFeed();
  const boom2 = new Error('failed before the receive was called');
  early.fail(boom2);
  await new Promise((r) => setImmediate(r));
  await assert.rejects(zfs.receive('tank/dst', early.readable), (e: unknown) => e === boom2);

  // Destroyed without an error: nothing to receive, not a hang.
  const closed = new Readable({ read() {} });
  closed.destroy();
  await assert.rejects(zfs.receive('tank/dst', closed), (e: unknown) => e instanceof ZfsError && /closed before/.test(e.message));

  const calls = readFileSync(log, 'utf8');
  assert.doesNotMatch(calls, /^receive/m, `zfs receive was spawned:\n${calls}`);
  assert.match(calls, /^get -Hp -o value type tank\/dst$/m);
  rmSync(log, { force: true });
});

test('receive: onWritten reports every byte that reached zfs, and a PlaintextFeed reusing buffers only on it delivers every byte intact', { timeout: 30_000 }, async () => {
  const out = join(dir, 'received.bin');
  // A slow reader: the pipe fills, so most writes wait and reused buffers would show up as wrong bytes.
  const fake = script('recv-slow', `case "$1" in\n  get) echo "cannot open: dataset does not exist" >&2; exit 1;;\n  receive) sleep 0.3; cat > '${out}'; exit 0;;\nesac\nexit 2`);
  const zfs = new Zfs({ zfs: [fake] });
  const partSize = 256 * 1024;
  const feed = new PlaintextFeed({ highWaterMark: partSize, poolSize: 2 });
  let written = 0;
  const done = zfs.receive('tank/dst', feed.readable, { onWritten: (n) => {
    written += n;
    feed.written(n);
  } });
  const expected: Buffer[] = [];
  const seen = new Set<ArrayBufferLike>();
  for (let i = 0; i < 24; i++) {
    const buf = feed.acquire(partSize);
    seen.add(buf.buffer);
    buf.fill(i + 1);
    expected.push(Buffer.from(buf));
    await feed.write([buf]);
  }
  feed.end();
  await done;
  assert.ok(seen.size < 24, 'the pool reused buffers');
  assert.equal(written, 24 * partSize);
  assert.ok(readFileSync(out).equals(Buffer.concat(expected)), 'zfs got every byte as written, none overwritten by a reused buffer');
  rmSync(log, { force: true });
});

test('zfs child processes (commands and sends) get neither AWS credentials nor the passphrase, but the rest of the environment', async () => {
  const envLog = join(dir, 'env.log');
  const rec = script('env-recorder', `env >> '${envLog}'\nexit 0`);
  const zfs = new Zfs({ zfs: [rec], zpool: [rec] }, { capabilities: zfsFuseCaps });
  const secrets: Record<string, string> = {
    AWS_ACCESS_KEY_ID: 'AKIAEXAMPLEEXAMPLE12',
    AWS_SECRET_ACCESS_KEY: 'secret-key-value-123',
    AWS_SESSION_TOKEN: 'session-token-value',
    ZBK_PASSPHRASE: 'correct horse battery',
    ZBK_PASSPHRASE_FILE: '/root/zbk-passphrase',
  };
  const saved = Object.fromEntries(Object.keys(secrets).map((k) => [k, process.env[k]]));
  Object.assign(process.env, secrets, { ZBK_TEST_VISIBLE: 'kept' });
  try {
    await zfs.exists('tank/ok');
    const s = zfs.send({ snapshot: 'tank/a@s' });
    await pipeline(s.stream, new Writable({ write: (_c, _e, cb) => cb() }));
    await s.done;
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    delete process.env.ZBK_TEST_VISIBLE;
  }
  const seen = readFileSync(envLog, 'utf8');
  assert.equal(seen.match(/^ZBK_TEST_VISIBLE=kept$/gm)?.length, 2, 'both the command and the send ran, with the ordinary environment');
  for (const [k, v] of Object.entries(secrets)) {
    assert.doesNotMatch(seen, new RegExp(`^${k}=`, 'm'), `${k} reached zfs`);
    assert.equal(seen.includes(v), false, `the value of ${k} reached zfs`);
  }
});
