import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, lstatSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { dirname, join } from 'node:path';
import { after, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { ManifestError } from '../../src/errors.js';
import { Manifest } from '../../src/manifest/manifest.js';
import { STAMP_FRESH_MS, checkUnlessStamped, fileState, settled, stampCovers, stampPath } from '../../src/manifest/check-stamp.js';
import { MIGRATIONS, SCHEMA_VERSION, migrate } from '../../src/manifest/schema.js';
import { tempDir } from './helpers.js';

const tmp = tempDir();
after(() => tmp.cleanup());
let n = 0;
const fresh = (): string => join(tmp.dir, `m${n++}.db`);

function isCode(code: string): (err: unknown) => boolean {
  return (err: unknown) => err instanceof ManifestError && err.code === code;
}

describe('schema migrations', () => {
  it('has at least one migration per version', () => {
    assert.equal(SCHEMA_VERSION, MIGRATIONS.length);
    assert.ok(SCHEMA_VERSION >= 3);
  });

  for (let v = 0; v < SCHEMA_VERSION; v++) {
    it(`migrates a database at version ${v} to ${SCHEMA_VERSION}, keeping its data`, () => {
      const path = fresh();
      const raw = new Database(path);
      raw.exec('CREATE TABLE probe (a); DROP TABLE probe'); // a real (non-empty) database file even at version 0
      migrate(raw, v);
      assert.equal(raw.pragma('user_version', { simple: true }), v);
      if (v >= 1) {
        // Data written by a v1-era zbk must survive later migrations.
        raw.exec(`INSERT INTO datasets (id, name, created_at) VALUES (1, 'tank/old', '2024-01-01T00:00:00.000Z')`);
        raw.exec(`INSERT INTO streams (stream_id, dataset_id, kind, to_guid, to_name, to_createtxg, to_creation, plaintext_size, stored_size,
          state, volume_size, part_size, started_at, completed_at) VALUES ('${'a'.repeat(32)}', 1, 'full', '18446744073709551615', 'old@a',
          '9007199254740993', 1, 5, 7, 'complete', 8, 8, '2024-01-01T00:00:00.000Z', '2024-01-01T00:00:00.000Z')`);
        raw.exec(`INSERT INTO volumes (stream_id, volume_index, object_key, state, storage_class, stored_size, part_count, plaintext_size,
          plaintext_sha256, started_at, uploaded_at) VALUES ('${'a'.repeat(32)}', 0, 'data/${'a'.repeat(32)}/000000.zbkv', 'complete',
          'DEEP_ARCHIVE', 7, 1, 5, '${'0'.repeat(64)}', '2024-01-01T00:00:00.000Z', '2024-01-01T00:00:00.000Z')`);
      }
      raw.close();
      const m = Manifest.open(path);
      try {
        assert.equal(m.schemaVersion, SCHEMA_VERSION);
        m.logEvent('probe', null, { v });
        m.setValue('probe', { v });
        assert.deepEqual(m.getValue('probe'), { v });
        if (v >= 1) {
          const last = m.lastPushedSnapshot('tank/old');
          assert.equal(last?.guid, 18446744073709551615n);
          assert.equal(last?.createtxg, 9007199254740993n);
          assert.equal(m.chainFor('tank/old').length, 1);
          assert.equal(m.chainFor('tank/old')[0]?.sendFlags, null, 'a stream from before send flags were recorded: unknown');
        }
        assert.deepEqual(m.integrityCheck(), { ok: true, problems: [] });
      } finally {
        m.close();
      }
    });
  }

  it('streams.send_flags holds a JSON array or NULL, nothing else', () => {
    const path = fresh();
    Manifest.open(path).close();
    const raw = new Database(path);
    try {
      raw.exec(`INSERT INTO datasets (id, name, created_at) VALUES (1, 'tank/f', '2025-01-01T00:00:00.000Z')`);
      const insert = (id: string, flags: string | null): void => {
        raw.prepare(`INSERT INTO streams (stream_id, dataset_id, kind, to_guid, to_name, to_createtxg, to_creation, state, volume_size, part_size, started_at, send_flags)
          VALUES (?, 1, 'full', '1', 'f@1', '1', 1, 'abandoned', 8, 8, '2025-01-01T00:00:00.000Z', ?)`).run(id, flags);
      };
      insert('1'.repeat(32), '["-w","-c"]');
      insert('2'.repeat(32), null);
      for (const bad of ['-w', '{"flags":["-w"]}', '"-w"']) assert.throws(() => insert('3'.repeat(32), bad), /CHECK constraint failed/, bad);
    } finally {
      raw.close();
    }
  });

  it('refuses a database from a newer zbk (MANIFEST_TOO_NEW) and leaves it alone', () => {
    const path = fresh();
    Manifest.open(path).close();
    const raw = new Database(path);
    raw.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
    raw.close();
    assert.throws(() => Manifest.open(path), isCode('MANIFEST_TOO_NEW'));
    assert.throws(() => Manifest.open(path, { readonly: true }), isCode('MANIFEST_TOO_NEW'));
    const again = new Database(path);
    assert.equal(again.pragma('user_version', { simple: true }), SCHEMA_VERSION + 1);
    again.close();
  });

  it('readonly open refuses a missing or outdated manifest instead of creating or migrating', () => {
    const missing = fresh();
    assert.throws(() => Manifest.open(missing, { readonly: true }), isCode('NO_MANIFEST'));
    assert.throws(() => Manifest.open(missing, { create: false }), isCode('NO_MANIFEST'));
    assert.equal(existsSync(missing), false);
    const old = fresh();
    const raw = new Database(old);
    migrate(raw, 1);
    raw.close();
    assert.throws(() => Manifest.open(old, { readonly: true }), isCode('MANIFEST_OUTDATED'));
  });

  it('runs with WAL and foreign keys on', () => {
    const path = fresh();
    const m = Manifest.open(path);
    m.close();
    const raw = new Database(path);
    assert.equal(raw.pragma('journal_mode', { simple: true }), 'wal');
    raw.close();
  });
});

/** A manifest with a repository row and a few pages of events (enough pages to damage one). */
function populated(): string {
  const path = fresh();
  const m = Manifest.open(path);
  m.initRepository({ storeUrl: 'memory://', keyId: '0123456789abcdef' });
  for (let i = 0; i < 200; i++) m.logEvent('filler', 'tank/x', { i, pad: 'x'.repeat(200) });
  m.close();
  return path;
}

describe('corrupted manifest files are refused at open', () => {

  function assertRefused(path: string): void {
    const before = readFileSync(path);
    assert.throws(
      () => Manifest.open(path),
      (err: unknown) => err instanceof ManifestError && err.code === 'MANIFEST_CORRUPT' && /zbk manifest rebuild/.test(err.message),
    );
    assert.deepEqual(readFileSync(path), before, 'the damaged file must be left untouched');
  }

  it('detects a truncated file', () => {
    const path = populated();
    truncateSync(path, Math.floor(statSync(path).size / 2));
    assertRefused(path);
  });

  it('detects flipped bytes inside a page', () => {
    const path = populated();
    const buf = readFileSync(path);
    const pageSize = buf.readUInt16BE(16);
    // Scramble the b-tree page header of the last page (interior structure, not just payload).
    const at = buf.length - pageSize;
    for (let i = 0; i < 12; i++) buf[at + i] = buf[at + i]! ^ 0xa5;
    writeFileSync(path, buf);
    assertRefused(path);
  });

  it('detects a file that is not a database, and an empty file', () => {
    const path = fresh();
    writeFileSync(path, 'this is not a database at all, but it is long enough to have a header'.repeat(20));
    assertRefused(path);
    const empty = fresh();
    writeFileSync(empty, '');
    assertRefused(empty);
  });
});

describe('the quick_check stamp (check-stamp.ts)', () => {
  /** Wait until the file's last write is older than the racy window (only then is a check stamped). */
  async function settle(path: string): Promise<void> {
    while (!settled(fileState(path), Date.now())) await sleep(100);
  }
  const checkedAt = (path: string): number => (JSON.parse(readFileSync(stampPath(path), 'utf8')) as { checkedAt: number }).checkedAt;
  /** Set the stamp's time to `ago` ms before now (its state kept). */
  function backdate(path: string, ago: number): void {
    const stamp = JSON.parse(readFileSync(stampPath(path), 'utf8')) as { checkedAt: number };
    writeFileSync(stampPath(path), JSON.stringify({ ...stamp, checkedAt: Date.now() - ago }));
  }
  /** How many times `PRAGMA quick_check` runs while `f` runs. */
  function quickChecks(f: () => void): number {
    const proto = Database.prototype as unknown as { pragma: (source: string, options?: unknown) => unknown };
    const pragma = proto.pragma;
    let n = 0;
    proto.pragma = function (this: unknown, source: string, options?: unknown) {
      if (/quick_check/i.test(source)) n++;
      return pragma.call(this, source, options);
    };
    try {
      f();
    } finally {
      proto.pragma = pragma;
    }
    return n;
  }
  const openClose = (path: string): void => Manifest.open(path).close();
  const covered = (path: string): boolean => stampCovers(path, fileState(path), Date.now());

  it('checks an unchanged file once within the hour, and again once the hour is past', async () => {
    const path = populated();
    await settle(path);
    assert.equal(quickChecks(() => openClose(path)), 1, 'checked, and stamped');
    assert.equal(quickChecks(() => openClose(path)), 0, 'the same bytes within the hour: not checked again');
    backdate(path, STAMP_FRESH_MS + 1000);
    assert.equal(quickChecks(() => openClose(path)), 1, 'a pass older than the hour: checked again');
    assert.ok(checkedAt(path) > Date.now() - 60_000);
  });

  it('stamps no state written less than 2 s before the check by the file system clock, nor one written while it ran', () => {
    const path = populated();
    rmSync(stampPath(path), { force: true });
    const { newestChangeMs } = fileState(path);
    assert.equal(checkUnlessStamped(path, () => {}, { fsNowMs: newestChangeMs + 1000 }), true);
    assert.equal(existsSync(stampPath(path)), false, 'a write in the same timestamp tick would not show: no stamp');
    const writer = new Database(path);
    try {
      checkUnlessStamped(path, () => writer.exec(`INSERT INTO kv (key, value, updated_at) VALUES ('during', '"x"', '2026-01-01T00:00:00Z')`), { fsNowMs: newestChangeMs + 3000 });
      assert.equal(existsSync(stampPath(path)), false, 'written while the check ran: no stamp');
    } finally {
      writer.close();
    }
    const now = fileState(path).newestChangeMs;
    checkUnlessStamped(path, () => {}, { fsNowMs: now + 3000 });
    assert.ok(covered(path), 'settled and untouched: stamped');
    assert.deepEqual(readdirSync(dirname(path)).filter((f) => f.endsWith('.tmp')), [], 'no temp stamp left');
  });

  it('checks a file written since its check, with its mtime put back to the nanosecond', async () => {
    const path = populated();
    await settle(path);
    openClose(path);
    assert.ok(covered(path));
    const { mtimeNs } = statSync(path, { bigint: true });
    const buf = readFileSync(path);
    const pageSize = buf.readUInt16BE(16);
    const at = buf.length - pageSize;
    for (let i = 0; i < 12; i++) buf[at + i] = buf[at + i]! ^ 0xa5;
    writeFileSync(path, buf);
    const touched = spawnSync('touch', ['-m', '-d', `@${mtimeNs / 1_000_000_000n}.${String(mtimeNs % 1_000_000_000n).padStart(9, '0')}`, path]);
    assert.equal(touched.status, 0, String(touched.stderr));
    assert.equal(statSync(path, { bigint: true }).mtimeNs, mtimeNs, 'mtime is back as it was');
    assert.throws(() => Manifest.open(path), isCode('MANIFEST_CORRUPT'));
  });

  for (const via of ['its path', 'a symlink']) {
    it(`a write-ahead log with data is another state than the one checked (manifest opened through ${via})`, async () => {
      const real = populated();
      let path = real;
      if (via === 'a symlink') {
        path = `${real}.link`;
        symlinkSync(real, path);
      }
      await settle(path);
      openClose(path);
      assert.ok(covered(path), 'stamped');
      // A second connection keeps the WAL from being checkpointed away; SQLite keeps it beside the real file.
      const writer = new Database(path);
      try {
        writer.exec(`INSERT INTO kv (key, value, updated_at) VALUES ('probe', '"x"', '2026-01-01T00:00:00Z')`);
        assert.ok(statSync(`${real}-wal`).size > 0, 'the write is in the WAL');
        assert.equal(covered(path), false);
      } finally {
        writer.close();
      }
      assert.equal(covered(path), false, 'nor is the file the WAL was checkpointed into');
    });
  }

  it('a stamp that is torn, not private or a symlink is not believed, and a planted symlink is replaced, not followed', async () => {
    const path = populated();
    await settle(path);
    openClose(path);
    const state = fileState(path);
    assert.ok(stampCovers(path, state, Date.now()));
    const good = readFileSync(stampPath(path), 'utf8');
    chmodSync(stampPath(path), 0o644);
    assert.equal(stampCovers(path, state, Date.now()), false, 'readable by others');
    rmSync(stampPath(path));
    const victim = `${path}.victim`;
    writeFileSync(victim, good, { mode: 0o600 });
    symlinkSync(victim, stampPath(path));
    assert.equal(stampCovers(path, state, Date.now()), false, 'a symlink');
    openClose(path); // checks, and stamps by rename over the link
    assert.equal(readFileSync(victim, 'utf8'), good, 'the link target is untouched');
    assert.ok(lstatSync(stampPath(path)).isFile(), 'the stamp is a file again');
    writeFileSync(stampPath(path), '{"v":2,"state":"');
    assert.equal(stampCovers(path, state, Date.now()), false, 'torn');
  });
});

describe('64-bit values', () => {
  it('round-trips guids and createtxg beyond 2^53 exactly', () => {
    const path = fresh();
    const m = Manifest.open(path);
    try {
      const guids = [18446744073709551615n, 9007199254740993n, 1n, 0n];
      guids.forEach((g, i) => {
        const id = (i + 1).toString(16).padStart(32, '0');
        m.beginStream({ streamId: id, dataset: `t/d${i}`, from: null, to: { name: `t/d${i}@s`, guid: g, createtxg: g, creation: 1 }, volumeSize: 8, partSize: 8 });
        const s = m.stream(id)!;
        assert.equal(s.to.guid, g);
        assert.equal(s.to.createtxg, g);
      });
      // A btrfs stream's identity is a 128-bit UUID: kept exactly; beyond 128 bits, and a createtxg beyond 64, refused.
      const uuid = (1n << 128n) - 1n;
      m.beginStream({ streamId: 'e'.repeat(32), dataset: '/mnt/b', from: null, to: { name: 'snaps/s', guid: uuid, createtxg: 7n, creation: 1 }, volumeSize: 8, partSize: 8 });
      assert.equal(m.stream('e'.repeat(32))!.to.guid, uuid);
      assert.throws(() =>
        m.beginStream({ streamId: 'f'.repeat(32), dataset: 't/e', from: null, to: { name: 't/e@s', guid: 1n << 128n, createtxg: 1n, creation: 1 }, volumeSize: 8, partSize: 8 }),
      );
      assert.throws(() =>
        m.beginStream({ streamId: 'd'.repeat(32), dataset: 't/e', from: null, to: { name: 't/e@s', guid: 1n, createtxg: 1n << 64n, creation: 1 }, volumeSize: 8, partSize: 8 }),
      );
    } finally {
      m.close();
    }
  });
});
