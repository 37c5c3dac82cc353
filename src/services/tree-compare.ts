/**
 * Content fingerprints of directory trees, for restore drills: which files
 * differ between a restored dataset and the original snapshot.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import type { Stats } from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';

async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

/**
 * Map of relative path → fingerprint: the sha256 hex of a regular file's
 * contents, `symlink:<target>` for a symlink, `dir` for every directory (so
 * empty directories count), `other` for anything else. The root is excluded,
 * and so is the `.zfs` control directory, and whatever `skip` says.
 */
export async function hashTree(dir: string, skip?: (st: Stats) => boolean): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  async function walk(rel: string): Promise<void> {
    const entries = (await readdir(join(dir, rel))).filter((n) => rel !== '' || n !== '.zfs');
    entries.sort();
    for (const name of entries) {
      const r = rel ? `${rel}/${name}` : name;
      const abs = join(dir, r);
      const st = await lstat(abs);
      if (skip?.(st)) continue;
      if (st.isSymbolicLink()) out.set(r, `symlink:${await readlink(abs)}`);
      else if (st.isDirectory()) {
        out.set(r, 'dir');
        await walk(r);
      } else if (st.isFile()) out.set(r, await sha256File(abs));
      else out.set(r, 'other');
    }
  }
  await walk('');
  return out;
}

export interface TreeDifference {
  path: string;
  problem: 'missing' | 'extra' | 'content';
}

/** Compare two trees; at most `limit` differences are listed. `skip` leaves entries out of both. */
export async function compareTrees(expectedDir: string, actualDir: string, limit = 50, skip?: (st: Stats) => boolean): Promise<{ compared: number; differences: TreeDifference[] }> {
  const [want, got] = await Promise.all([hashTree(expectedDir, skip), hashTree(actualDir, skip)]);
  const differences: TreeDifference[] = [];
  for (const [path, h] of want) {
    const g = got.get(path);
    if (g === undefined) differences.push({ path, problem: 'missing' });
    else if (g !== h) differences.push({ path, problem: 'content' });
  }
  for (const path of got.keys()) if (!want.has(path)) differences.push({ path, problem: 'extra' });
  return { compared: want.size, differences: differences.slice(0, limit) };
}
