/**
 * Several repositories on one machine with default settings (no
 * `state_dir`): each gets its own state directory `<base>/<repository id>/`,
 * so two configs push and report independently; the old shared layout
 * (`<base>/manifest.db`) is moved for the repository it belongs to, and
 * left alone for any other.
 *
 * As root the base is /var/lib/zbk whatever HOME or XDG_STATE_HOME say, so
 * zbk runs in a private mount namespace whose /var/lib is a temp dir.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { jsonOf } from '../helpers/cli.js';
import { createTestPool, requireZfs, writeRandomFiles } from '../helpers/pool.js';
import { repositoryId } from '../../src/config/config.js';
import { acquireLock } from '../../src/manifest/lock.js';
import { Manifest } from '../../src/manifest/manifest.js';
import type { StatusResult } from '../../src/services/status.js';
import { requireRoot, runZbkWithVarLib } from './state-fs.js';

test('two repositories with default settings push and report independently; the old shared layout moves for its own repository only', async (t) => {
  if (!requireRoot(t) || !requireZfs(t)) return;
  const dir = mkdtempSync(join(tmpdir(), 'zbk-default-state-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const varLib = join(dir, 'varlib');
  mkdirSync(varLib);
  const base = join(varLib, 'zbk');
  const pool = await createTestPool({ sizeMiB: 256 });
  t.after(() => pool.destroy());
  const pass = join(dir, 'passphrase');
  writeFileSync(pass, 'correct horse battery staple\n', { mode: 0o600 });

  const repos = ['a', 'b'].map((n) => {
    const ds = `${pool.name}/${n}`;
    const store = join(dir, `store-${n}`);
    const env = { ZBK_CONFIG: join(dir, `${n}.toml`), ZBK_PASSPHRASE_FILE: pass, HOME: dir, XDG_STATE_HOME: join(dir, 'xdg'), ZBK_TEST_ALLOW_WEAK_KDF: '1' };
    return { n, ds, store, id: repositoryId(`file://${store}`), zbk: (args: string[]) => runZbkWithVarLib(varLib, args, env) };
  });
  const [a, b] = repos as [(typeof repos)[0], (typeof repos)[0]];
  assert.notEqual(a.id, b.id);

  for (const r of repos) {
    await pool.zfs.createDataset(r.ds);
    writeRandomFiles((await pool.zfs.mountpoint(r.ds))!, { files: 2, bytesEach: 1024 * 1024, seed: r.n });
    await pool.zfs.snapshot(`${r.ds}@s1`);
    const init = await r.zbk(['init', '--store', `file://${r.store}`, '--dataset', r.ds, '--kdf', 'min', '--part-size', '5MiB', '--volume-size', '5MiB', '--json']);
    assert.equal(init.code, 0, init.stderr);
    assert.equal(jsonOf<{ manifestPath: string }>(init).manifestPath, `/var/lib/zbk/${r.id}/manifest.db`);
  }
  // Neither init moved the other's manifest aside.
  assert.deepEqual(readdirSync(base).sort(), [a.id, b.id].sort());
  for (const r of repos) assert.ok(!readdirSync(join(base, r.id)).some((f) => f.includes('replaced')), `nothing moved aside in ${r.id}`);

  for (const r of repos) {
    const push = await r.zbk(['push', '--json']);
    assert.equal(push.code, 0, `push ${r.n}: ${push.stdout} ${push.stderr}`);
  }
  for (const r of repos) {
    const st = await r.zbk(['status', '--json']);
    assert.equal(st.code, 0, st.stderr);
    const datasets = jsonOf<StatusResult>(st).datasets.filter((d) => d.latestPushed !== null).map((d) => `${d.dataset}@${d.latestPushed}`);
    assert.deepEqual(datasets, [`${r.ds}@s1`], `status of ${r.n} shows its own push only`);
  }

  // The layout of an older zbk: a's manifest and push status directly in the base.
  for (const f of ['manifest.db', 'push-status.json']) renameSync(join(base, a.id, f), join(base, f));
  rmSync(join(base, a.id), { recursive: true });

  // b's runs leave it alone (it records a's store URL), also while b has no manifest of its own.
  renameSync(join(base, b.id), join(dir, 'b-state'));
  let st = await b.zbk(['status', '--json']);
  assert.equal(st.code, 9, st.stdout);
  assert.equal(jsonOf<{ error: { code: string } }>(st).error.code, 'NO_MANIFEST');
  assert.ok(existsSync(join(base, 'manifest.db')), "b's run leaves a's old manifest where it is");
  assert.equal(existsSync(join(base, b.id, 'manifest.db')), false);
  rmSync(join(base, b.id), { recursive: true, force: true });
  renameSync(join(dir, 'b-state'), join(base, b.id));
  st = await b.zbk(['status', '--json']);
  assert.equal(st.code, 0, st.stderr);
  assert.equal(existsSync(join(base, a.id)), false);

  // While another zbk holds the old manifest's lock (an older zbk's push), a uses it where it is.
  const held = await acquireLock(join(base, 'manifest.db'), { wait: false, command: 'zbk push (an older zbk)' });
  try {
    st = await a.zbk(['status']);
    assert.equal(st.code, 0, st.stderr);
    assert.match(st.stderr, /the manifest in \/var\/lib\/zbk is in use by zbk push \(an older zbk\) .*using it there this time/);
    assert.match(st.stdout, new RegExp(a.ds));
    assert.ok(existsSync(join(base, 'manifest.db')), 'not moved while locked');
  } finally {
    held.release();
  }

  // a's next run moves it into a's own directory, with the push status.
  st = await a.zbk(['status']);
  assert.equal(st.code, 0, st.stderr);
  assert.match(st.stderr, new RegExp(`moved the manifest of file://${a.store} from /var/lib/zbk to /var/lib/zbk/${a.id}`));
  st = await a.zbk(['status', '--json']);
  assert.equal(st.code, 0, st.stderr);
  assert.deepEqual(jsonOf<StatusResult>(st).datasets.filter((d) => d.latestPushed !== null).map((d) => d.dataset), [a.ds]);
  assert.deepEqual(readdirSync(base).filter((f) => !f.startsWith('.')).sort(), [a.id, b.id].sort(), 'nothing of a is left in the base');
  assert.ok(existsSync(join(base, a.id, 'push-status.json')));
  const m = Manifest.open(join(base, a.id, 'manifest.db'), { readonly: true });
  try {
    assert.equal(m.repository()?.storeUrl, `file://${a.store}`);
  } finally {
    m.close();
  }
  const check = await a.zbk(['check', '--max-snapshot-age', 'off']);
  assert.equal(check.code, 0, `check of a after the move: ${check.stdout} ${check.stderr}`);
});
