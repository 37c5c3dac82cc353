/**
 * Pure parsers of btrfs-progs output (6.2, LC_ALL=C, TZ=UTC0; captured in
 * test/fixtures/btrfs/). Numbers that can exceed 2^53 (subvolume ids,
 * generations) become `bigint` from their decimal text. Malformed output is
 * an error (BTRFS_PARSE), never a guess.
 */
import { BtrfsError } from './errors.js';
import type { MountInfo, SubvolumeInfo, SubvolumeListEntry } from './types.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

function parseError(what: string, line: string): BtrfsError {
  const shown = line.length > 120 ? `${line.slice(0, 120)}…` : line;
  return new BtrfsError(`unexpected btrfs output (${what}): ${JSON.stringify(shown)} — report this with your btrfs-progs version`, 'BTRFS_PARSE');
}

function u64(value: string, what: string): bigint {
  if (!/^\d{1,20}$/.test(value)) throw parseError(`${what} is not an integer`, value);
  const n = BigInt(value);
  if (n > 0xffffffffffffffffn) throw parseError(`${what} exceeds 64 bits`, value);
  return n;
}

/** A UUID, or null for btrfs's `-`. */
function uuidOrNull(value: string, what: string): string | null {
  if (value === '-') return null;
  if (!UUID.test(value)) throw parseError(`${what} is not a UUID`, value);
  return value;
}

/** `YYYY-MM-DD HH:MM:SS` (UTC, or with a `±HHMM` offset) → seconds since the epoch; null for `-`. */
export function parseBtrfsTime(value: string, what: string): number | null {
  if (value === '-') return null;
  const m = /^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})(?: ([+-])(\d{2})(\d{2}))?$/.exec(value);
  if (!m) throw parseError(`${what} is not a time`, value);
  const [y, mo, d, h, mi, s] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  const offset = m[7] ? (m[7] === '-' ? -1 : 1) * (Number(m[8]) * 3600 + Number(m[9]) * 60) : 0;
  return Date.UTC(y, mo - 1, d, h, mi, s) / 1000 - offset;
}

/** Parse `btrfs subvolume show PATH`. */
export function parseSubvolumeShow(text: string): SubvolumeInfo {
  const lines = text.split('\n').map((l) => l.replace(/\r$/, ''));
  const fsPath = lines[0] ?? '';
  if (fsPath === '' || fsPath.startsWith('\t')) throw parseError('btrfs subvolume show: first line is the path', fsPath);
  const fields = new Map<string, string>();
  const snapshots: string[] = [];
  // The fields zbk reads all come before "Snapshot(s):"; what follows (the
  // snapshots' paths, which any name can be made to look like a field line,
  // and the quota group) is never read as a field. A field twice before it
  // can only be a path that pretends to be one: refused.
  let afterSnapshots = false;
  for (const line of lines.slice(1)) {
    if (line === '') continue;
    if (afterSnapshots) {
      if (line.startsWith('\t\t')) snapshots.push(line.replace(/^\t+/, ''));
      continue;
    }
    const m = /^\t([^\t:][^:]*):\s*(.*)$/.exec(line);
    if (!m) throw parseError('btrfs subvolume show', line);
    if (m[1] === 'Snapshot(s)') {
      afterSnapshots = true;
      continue;
    }
    if (fields.has(m[1]!)) throw parseError(`btrfs subvolume show: "${m[1]}:" twice`, line);
    fields.set(m[1]!, m[2]!.trim());
  }
  const need = (key: string): string => {
    const v = fields.get(key);
    if (v === undefined) throw parseError(`btrfs subvolume show: no "${key}:" line`, fsPath);
    return v;
  };
  const uuid = uuidOrNull(need('UUID'), 'UUID');
  if (uuid === null) throw parseError('btrfs subvolume show: UUID is "-"', fsPath);
  return {
    fsPath,
    name: need('Name'),
    uuid,
    parentUuid: uuidOrNull(need('Parent UUID'), 'Parent UUID'),
    receivedUuid: uuidOrNull(need('Received UUID'), 'Received UUID'),
    creation: parseBtrfsTime(need('Creation time'), 'Creation time'),
    subvolumeId: u64(need('Subvolume ID'), 'Subvolume ID'),
    generation: u64(need('Generation'), 'Generation'),
    otransid: u64(need('Gen at creation'), 'Gen at creation'),
    topLevelId: u64(need('Top level ID'), 'Top level ID'),
    readOnly: need('Flags').split(/[\s|,]+/).includes('readonly'),
    snapshots,
  };
}

const LIST_LINE =
  /^ID (\d+) gen (\d+) cgen (\d+) top level (\d+)(?: otime (-|\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}))? parent_uuid (\S+) +received_uuid (\S+) +uuid (\S+) path (.*)$/;

/**
 * Parse `btrfs subvolume list -a [-s] [-r] -u -q -R -c -g PATH` (zbk runs it
 * with TZ=UTC0, so `otime` is UTC). btrfs prints a path as it is: a line
 * that is not an entry continues the previous entry's path (a name with a
 * newline, which zbk then refuses to send). A name can also hold a whole
 * line that looks like an entry, so nothing listed here is trusted as it
 * is: callers confirm each entry they use with `btrfs subvolume show`
 * (Btrfs.confirmed).
 */
export function parseSubvolumeList(text: string): SubvolumeListEntry[] {
  const out: SubvolumeListEntry[] = [];
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  for (const line of lines) {
    const m = LIST_LINE.exec(line);
    let entry: SubvolumeListEntry | null = null;
    if (m) {
      try {
        entry = {
          subvolumeId: u64(m[1]!, 'ID'),
          generation: u64(m[2]!, 'gen'),
          otransid: u64(m[3]!, 'cgen'),
          topLevelId: u64(m[4]!, 'top level'),
          otime: m[5] === undefined ? null : parseBtrfsTime(m[5], 'otime'),
          parentUuid: uuidOrNull(m[6]!, 'parent_uuid'),
          receivedUuid: uuidOrNull(m[7]!, 'received_uuid'),
          uuid: uuidOrNull(m[8]!, 'uuid') ?? '',
          path: m[9]!,
        };
        if (entry.uuid === '') entry = null;
      } catch {
        // Not something btrfs prints for an entry: part of a name (below).
        entry = null;
      }
    }
    if (!entry) {
      const prev = out.at(-1);
      if (!prev) throw parseError('btrfs subvolume list', line);
      prev.path += `\n${line}`;
      continue;
    }
    out.push(entry);
  }
  return out;
}

/** The prefix `btrfs subvolume list -a` puts before paths outside the subvolume it was given. */
export const FS_TREE_PREFIX = '<FS_TREE>/';

/**
 * An entry's path relative to the filesystem's top level. With `-a`, btrfs
 * prints every path from the top level and prefixes `<FS_TREE>/` exactly
 * when the entry's top level is not `listedId`, the subvolume the listed
 * path is in.
 */
export function topLevelPath(entry: SubvolumeListEntry, listedId: bigint): string {
  if (entry.topLevelId !== listedId && entry.path.startsWith(FS_TREE_PREFIX)) return entry.path.slice(FS_TREE_PREFIX.length);
  return entry.path;
}

/** Undo mountinfo's octal escapes (`\040` for a space, `\011`, `\012`, `\134`). */
function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** Parse /proc/self/mountinfo (proc(5)). */
export function parseMountinfo(text: string): MountInfo[] {
  const out: MountInfo[] = [];
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const f = line.split(' ');
    const dash = f.indexOf('-', 6);
    if (f.length < 10 || dash < 0 || f.length < dash + 4) throw new BtrfsError(`unexpected /proc/self/mountinfo line: ${JSON.stringify(line.slice(0, 120))}`, 'BTRFS_PARSE');
    out.push({
      mountId: Number(f[0]),
      root: unescapeMount(f[3]!),
      mountPoint: unescapeMount(f[4]!),
      fsType: f[dash + 1]!,
      source: unescapeMount(f[dash + 2]!),
      superOptions: f[dash + 3]!,
    });
  }
  return out;
}

/** The btrfs-progs version from `btrfs --version` (`btrfs-progs v6.2`), or null. */
export function parseBtrfsVersion(text: string): string | null {
  const m = /^btrfs-progs v(\d+(?:\.\d+)*\S*)/m.exec(text);
  return m ? m[1]! : null;
}

/** Which optional flags `btrfs send --help` documents. */
export function parseSendHelp(text: string): { proto: boolean; compressedData: boolean } {
  return { proto: /^\s*--proto\b/m.test(text), compressedData: /^\s*--compressed-data\b/m.test(text) };
}

/** The kernel's send stream version from /sys/fs/btrfs/features/send_stream_version (1 when the file is absent or unreadable). */
export function parseSendStreamVersion(text: string | null): number {
  const n = text === null ? NaN : Number(text.trim());
  return Number.isInteger(n) && n >= 1 ? n : 1;
}

/**
 * The subvolume a `btrfs receive` (without -q) created: the last `At subvol
 * NAME` (6.2 prints it on stderr) or `At snapshot NAME` (on stdout) line of
 * what it printed, or null.
 */
export function parseReceivedName(stderr: string): string | null {
  let name: string | null = null;
  for (const m of stderr.matchAll(/^At (?:subvol|snapshot) (.+)$/gm)) name = m[1]!;
  return name;
}

/** `ro=true` / `ro=false` from `btrfs property get -ts PATH ro`. */
export function parseReadOnlyProperty(text: string): boolean {
  const m = /^ro=(true|false)\s*$/m.exec(text);
  if (!m) throw parseError('btrfs property get ro', text.trim());
  return m[1] === 'true';
}
