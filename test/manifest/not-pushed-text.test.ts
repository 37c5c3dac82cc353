/** "Nothing pushed" reads as such, not as a double negative ("no snapshot has not been pushed"). */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { SnapshotNotPushedError } from '../../src/manifest/errors.js';
import { Manifest } from '../../src/manifest/manifest.js';
import { tempDir } from './helpers.js';

test('a dataset with nothing pushed: "nothing has been pushed yet"', (t) => {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  const m = Manifest.open(join(dir, 'manifest.db'));
  t.after(() => m.close());
  assert.throws(
    () => m.chainFor('tank/none'),
    (e: unknown) => e instanceof SnapshotNotPushedError && e.message === 'tank/none: nothing has been pushed yet (no restorable stream)',
  );
  assert.equal(new SnapshotNotPushedError('tank/a', 'snapshot @daily').message, 'tank/a: snapshot @daily has not been pushed (no restorable stream ends there)');
});
