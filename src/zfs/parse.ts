/**
 * Pure parsers of zfs output. Numbers that can exceed 2^53 (guid, createtxg)
 * become `bigint` straight from their decimal text and never pass through
 * `Number`. Malformed output is an error (ZFS_PARSE), never a guess.
 */
import { ZfsError } from './errors.js';
import type { Bookmark, Hold, Snapshot } from './types.js';

/** One row of `zfs get -Hp -o name,property,value`. */
export interface PropertyRow {
  name: string;
  property: string;
  value: string;
}

function parseError(what: string, line: string): ZfsError {
  const shown = line.length > 120 ? `${line.slice(0, 120)}…` : line;
  return new ZfsError(`unexpected zfs output (${what}): ${JSON.stringify(shown)} — report this with your zfs version`, 'ZFS_PARSE');
}

function lines(text: string): string[] {
  return text.split('\n').map((l) => l.replace(/\r$/, '')).filter((l) => l.length > 0);
}

/** Parse `zfs get -Hp -o name,property,value ...` output (tab-separated, three fields). */
export function parseGetOutput(text: string): PropertyRow[] {
  return lines(text).map((line) => {
    const f = line.split('\t');
    if (f.length !== 3 || f[0] === '' || f[1] === '') throw parseError('zfs get -Hp -o name,property,value', line);
    return { name: f[0]!, property: f[1]!, value: f[2]! };
  });
}

/** Group property rows by object name, keeping zfs's order of first appearance. */
export function groupProperties(rows: PropertyRow[]): Map<string, Map<string, string>> {
  const out = new Map<string, Map<string, string>>();
  for (const r of rows) {
    let m = out.get(r.name);
    if (!m) {
      m = new Map();
      out.set(r.name, m);
    }
    m.set(r.property, r.value);
  }
  return out;
}

/** Parse an unsigned 64-bit decimal (guid, createtxg) exactly. */
export function parseU64(value: string, what: string): bigint {
  if (!/^\d{1,20}$/.test(value)) throw parseError(`${what} is not an exact integer (was -p missing?)`, value);
  const n = BigInt(value);
  if (n > 0xffffffffffffffffn) throw parseError(`${what} exceeds 64 bits`, value);
  return n;
}

/** Parse an exact integer that fits a JS number (bytes, seconds). */
export function parseSafeInt(value: string, what: string): number {
  if (!/^\d{1,16}$/.test(value)) throw parseError(`${what} is not an exact integer (was -p missing?)`, value);
  const n = Number(value);
  if (!Number.isSafeInteger(n)) throw parseError(`${what} exceeds 2^53`, value);
  return n;
}

function need(props: Map<string, string>, prop: string, name: string): string {
  const v = props.get(prop);
  if (v === undefined) throw parseError(`property ${prop} missing for ${name}`, name);
  return v;
}

/** Sort by createtxg (zfs's creation order; `creation` has 1 s resolution). */
function byTxg<T extends { createtxg: bigint }>(a: T, b: T): number {
  return a.createtxg < b.createtxg ? -1 : a.createtxg > b.createtxg ? 1 : 0;
}

/**
 * Snapshots of `dataset` itself (not of its children) from property rows that
 * include type, guid, createtxg, creation, used and referenced; ordered by createtxg.
 */
export function snapshotsFromProperties(rows: PropertyRow[], dataset: string): Snapshot[] {
  const prefix = `${dataset}@`;
  const out: Snapshot[] = [];
  for (const [name, props] of groupProperties(rows)) {
    if (!name.startsWith(prefix)) continue;
    const shortName = name.slice(prefix.length);
    // A child's snapshot is `dataset/child@x`, which never matches `dataset@`; guard anyway.
    if (shortName.includes('@') || shortName.includes('/')) continue;
    const type = props.get('type');
    if (type !== undefined && type !== 'snapshot') continue;
    out.push(snapshotFromProps(name, dataset, shortName, props));
  }
  return out.sort(byTxg);
}

/** Build one Snapshot from its properties. */
export function snapshotFromProps(name: string, dataset: string, shortName: string, props: Map<string, string>): Snapshot {
  return {
    name,
    dataset,
    shortName,
    guid: parseU64(need(props, 'guid', name), `guid of ${name}`),
    createtxg: parseU64(need(props, 'createtxg', name), `createtxg of ${name}`),
    creation: parseSafeInt(need(props, 'creation', name), `creation of ${name}`),
    used: parseSafeInt(need(props, 'used', name), `used of ${name}`),
    referenced: parseSafeInt(need(props, 'referenced', name), `referenced of ${name}`),
  };
}

/** Bookmarks of `dataset` from property rows with type, guid, createtxg, creation; ordered by createtxg. */
export function bookmarksFromProperties(rows: PropertyRow[], dataset: string): Bookmark[] {
  const prefix = `${dataset}#`;
  const out: Bookmark[] = [];
  for (const [name, props] of groupProperties(rows)) {
    if (!name.startsWith(prefix)) continue;
    const type = props.get('type');
    if (type !== undefined && type !== 'bookmark') continue;
    out.push({
      name,
      dataset,
      shortName: name.slice(prefix.length),
      guid: parseU64(need(props, 'guid', name), `guid of ${name}`),
      createtxg: parseU64(need(props, 'createtxg', name), `createtxg of ${name}`),
      creation: parseSafeInt(need(props, 'creation', name), `creation of ${name}`),
    });
  }
  return out.sort(byTxg);
}

/** Parse `zfs list -Hp -o <columns>` output into records keyed by column name. */
export function parseListOutput(text: string, columns: readonly string[]): Record<string, string>[] {
  return lines(text).map((line) => {
    const f = line.split('\t');
    if (f.length !== columns.length) throw parseError(`zfs list -Hp with ${columns.length} columns`, line);
    const rec: Record<string, string> = {};
    columns.forEach((c, i) => {
      rec[c] = f[i]!;
    });
    return rec;
  });
}

/** Snapshots of `dataset` from `zfs list -Hp -t snapshot -o name,guid,createtxg,creation,used,referenced`. */
export function snapshotsFromList(text: string, dataset: string): Snapshot[] {
  const cols = ['name', 'guid', 'createtxg', 'creation', 'used', 'referenced'] as const;
  const prefix = `${dataset}@`;
  return parseListOutput(text, cols)
    .filter((r) => r.name!.startsWith(prefix) && !r.name!.slice(prefix.length).includes('/'))
    .map((r) => snapshotFromProps(r.name!, dataset, r.name!.slice(prefix.length), new Map(Object.entries(r))))
    .sort(byTxg);
}

/**
 * The estimated stream size in bytes from `zfs send -nP` output (the
 * `size<TAB>N` line). Returns null when there is no size line.
 */
export function parseSendEstimate(text: string): number | null {
  for (const line of lines(text)) {
    const f = line.trim().split(/\t| +/);
    if (f[0] === 'size') {
      if (f.length !== 2) throw parseError('zfs send -nP size line', line);
      return parseSafeInt(f[1]!, 'send size estimate');
    }
  }
  return null;
}

/** Parse `zfs holds -H [-p]` output: `snapshot<TAB>tag<TAB>timestamp`. */
export function parseHoldsOutput(text: string): Hold[] {
  return lines(text).map((line) => {
    const f = line.split('\t');
    if (f.length !== 3 || f[0] === '' || f[1] === '') throw parseError('zfs holds -H', line);
    return { snapshot: f[0]!, tag: f[1]!, timestamp: f[2]! };
  });
}

/** The OpenZFS userland version from `zfs version` (`zfs-2.2.2-0ubuntu9`), or null. */
export function parseZfsVersion(text: string): string | null {
  const m = /^zfs-(\d+\.\d+\.\d+[^\s]*)\s*$/m.exec(text);
  return m ? m[1]! : null;
}
