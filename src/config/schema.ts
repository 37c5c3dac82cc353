/**
 * Every section and key the config file accepts, with the type of its value,
 * in one table. The loader (src/config/config.ts) reads keys only through
 * this table (its accessors take the key names it declares, checked by the
 * compiler), and `schemaProblems` refuses every key that is not in it: a
 * typo such as `keep_lst = 7` is an error naming the nearest known key,
 * never a silent fall-back to a default.
 */
import { PRICE_OVERRIDE_KEYS } from '../cost/prices.js';
import type { KeyPath } from './locate.js';

/** What a value may be. `secret`: a string that never appears in a message (webhook URLs carry tokens). */
export type Kind = 'string' | 'secret' | 'number' | 'boolean' | 'size' | 'command' | 'raw' | 'rate';

const PRICES: Readonly<Record<string, Kind>> = Object.fromEntries(Object.keys(PRICE_OVERRIDE_KEYS).map((k) => [k, 'number' as const]));

/** `root`: keys before the first [section]; `dataset`: each [[dataset]] entry; every other entry is a [section]. */
export const CONFIG_SCHEMA = {
  root: { state_dir: 'string', passphrase_file: 'string', mirrors: 'number' },
  store: {
    provider: 'string',
    url: 'string',
    endpoint: 'string',
    region: 'string',
    path_style: 'boolean',
    data_storage_class: 'string',
    meta_storage_class: 'string',
    checksum_calculation: 'string',
  },
  upload: { part_size: 'size', volume_size: 'size', parallel: 'number', limit: 'rate' },
  retry: { retries: 'number', min_timeout_ms: 'number', max_timeout_ms: 'number' },
  zfs: { zfs: 'command', zpool: 'command', protect_base: 'string' },
  btrfs: { btrfs: 'command' },
  dataset: { name: 'string', snapshot_pattern: 'string', raw: 'raw' },
  hooks: { pre_push: 'command', post_push: 'command', timeout_seconds: 'number', on_success: 'secret', on_failure: 'secret', webhook_format: 'string', include_names: 'boolean' },
  restore: { free_egress_gb: 'number', reserve_gb: 'number', tier: 'string', staging_dir: 'string', limit: 'rate' },
  retention: { keep_last: 'number', keep_monthly: 'number', keep_yearly: 'number' },
  consolidate: { timing: 'string' },
  prices: PRICES,
} as const satisfies Record<string, Readonly<Record<string, Kind>>>;

export type SchemaSection = keyof typeof CONFIG_SCHEMA;
/** The keys the schema declares for `S` (any string for [prices], whose keys come from the price table). */
export type SchemaKey<S extends SchemaSection> = keyof (typeof CONFIG_SCHEMA)[S] & string;

/** Sections written as arrays of tables (`[[dataset]]`). */
const ARRAY_SECTIONS: ReadonlySet<string> = new Set(['dataset']);
const TABLE_SECTIONS = Object.keys(CONFIG_SCHEMA).filter((s) => s !== 'root' && !ARRAY_SECTIONS.has(s));
/** Sections with more keys than this are not listed in full in a message. */
const LIST_LIMIT = 10;

export function kindOf(section: SchemaSection, key: string): Kind | undefined {
  return Object.hasOwn(CONFIG_SCHEMA[section], key) ? (CONFIG_SCHEMA[section] as Record<string, Kind>)[key] : undefined;
}

const KIND_TEXT: Record<Kind, string> = {
  string: 'a string',
  secret: 'a string',
  number: 'a number',
  boolean: 'true or false',
  size: 'a size (e.g. "64MiB") or a number of bytes',
  command: 'a command name or an array of arguments',
  raw: '"auto", true or false',
  rate: 'a rate in quotes (e.g. "2MiB/s" or "off") or a schedule (e.g. "08:00-23:00=2MiB/s, 23:00-08:00=off")',
};

function accepts(kind: Kind, v: unknown): boolean {
  switch (kind) {
    case 'string':
    case 'secret':
      return typeof v === 'string';
    case 'number':
      return typeof v === 'number' && Number.isFinite(v);
    case 'boolean':
      return typeof v === 'boolean';
    case 'size':
      return typeof v === 'string' || (typeof v === 'number' && Number.isFinite(v));
    case 'command':
      return typeof v === 'string' || (Array.isArray(v) && v.every((x) => typeof x === 'string'));
    case 'raw':
      return typeof v === 'string' || typeof v === 'boolean';
    case 'rate':
      return typeof v === 'string';
  }
}

type Table = Record<string, unknown>;

export function isTable(v: unknown): v is Table {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

/** "a string", "an integer", "a table"...: what a value is, never the value itself. */
export function typeName(v: unknown): string {
  if (typeof v === 'string') return 'a string';
  if (typeof v === 'boolean') return 'a boolean';
  if (typeof v === 'number' || typeof v === 'bigint') return Number.isInteger(Number(v)) ? 'an integer' : 'a float';
  if (v instanceof Date) return 'a date';
  if (Array.isArray(v)) return 'an array';
  if (isTable(v)) return 'a table';
  return typeof v;
}

/**
 * Edit distance with adjacent transpositions (optimal string alignment):
 * `keep_lst` → `keep_last` is 1, `teir` → `tier` is 1.
 */
export function editDistance(a: string, b: string): number {
  const w = b.length + 1;
  const d = new Array<number>((a.length + 1) * w).fill(0);
  for (let i = 0; i <= a.length; i++) d[i * w] = i;
  for (let j = 0; j <= b.length; j++) d[j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[(i - 1) * w + j]! + 1, d[i * w + j - 1]! + 1, d[(i - 1) * w + j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[(i - 2) * w + j - 2]! + 1);
      d[i * w + j] = v;
    }
  }
  return d[a.length * w + b.length]!;
}

/** The known name nearest to `name`, when it is near enough to be a typo (case, `-` for `_` and about a third of the letters). */
export function nearest(name: string, known: readonly string[]): string | undefined {
  const norm = (s: string): string => s.toLowerCase().replace(/-/g, '_');
  let best: string | undefined;
  let bestD = Infinity;
  for (const k of known) {
    const dist = editDistance(norm(name), norm(k));
    if (dist < bestD) {
      best = k;
      bestD = dist;
    }
  }
  if (best === undefined) return undefined;
  return bestD <= Math.max(1, Math.floor(Math.max(name.length, best.length) / 3)) ? best : undefined;
}

export type ProblemCode = 'CONFIG_UNKNOWN_KEY' | 'CONFIG_UNKNOWN_SECTION' | 'CONFIG_TYPE';

/** One key the schema refuses. `message` and `fix` name keys, never values. */
export interface ConfigProblem {
  path: KeyPath;
  code: ProblemCode;
  message: string;
  fix: string;
}

/** `[retention]`, `[[dataset]] "tank/a"`, `the top level`. */
function where(section: SchemaSection, entry?: { index: number; table: Table }): string {
  if (section === 'root') return 'at the top level';
  if (!entry) return `in [${section}]`;
  const name = entry.table.name;
  return `in [[${section}]] ${typeof name === 'string' ? JSON.stringify(name) : `#${entry.index + 1}`}`;
}

/** `retention.keep_last`, `dataset[1].raw`, `mirrors`: the key as the loader's messages name it. */
export function dotted(section: SchemaSection, key: string, index?: number): string {
  if (section === 'root') return key;
  return `${section}${index === undefined ? '' : `[${index}]`}.${key}`;
}

/** The other sections that declare `key` (for "it belongs in [store]"). */
function homesOf(key: string, except: SchemaSection): SchemaSection[] {
  return (Object.keys(CONFIG_SCHEMA) as SchemaSection[]).filter((s) => s !== except && s !== 'prices' && kindOf(s, key) !== undefined);
}

/** `in [store]` / `to [store]`; the top level: `at` / `to` the top of the file. */
function sectionLabel(s: SchemaSection, preposition: 'in' | 'to'): string {
  if (s === 'root') return `${preposition === 'in' ? 'at' : 'to'} the top of the file, before the first [section]`;
  return ARRAY_SECTIONS.has(s) ? `${preposition} [[${s}]]` : `${preposition} [${s}]`;
}

function unknownKey(section: SchemaSection, key: string, path: KeyPath, entry?: { index: number; table: Table }): ConfigProblem {
  const known = Object.keys(CONFIG_SCHEMA[section]);
  const head = `unknown key \`${key}\` ${where(section, entry)}`;
  const homes = homesOf(key, section);
  if (homes.length > 0) {
    return { path, code: 'CONFIG_UNKNOWN_KEY', message: `${head} — it belongs ${homes.map((h) => sectionLabel(h, 'in')).join(' or ')}`, fix: `move \`${key}\` ${sectionLabel(homes[0]!, 'to')}` };
  }
  // At the top level a table name is a candidate too ("retension = ..." as a dotted key).
  const candidates = section === 'root' ? [...known, ...TABLE_SECTIONS, ...ARRAY_SECTIONS] : known;
  const near = nearest(key, candidates);
  if (near !== undefined) {
    return { path, code: 'CONFIG_UNKNOWN_KEY', message: `${head} — did you mean \`${near}\`?`, fix: `rename \`${key}\` to \`${near}\`` };
  }
  const list = known.length <= LIST_LIMIT ? ` (known keys: ${known.join(', ')})` : section === 'prices' ? ' (see docs/COSTS.md for the price keys)' : '';
  const docs = section === 'prices' ? 'docs/COSTS.md for the price keys' : 'README "Configuration" for the keys';
  return { path, code: 'CONFIG_UNKNOWN_KEY', message: `${head}${list}`, fix: `remove \`${key}\`, or see ${docs}` };
}

function wrongType(section: SchemaSection, key: string, kind: Kind, v: unknown, path: KeyPath, index?: number): ConfigProblem {
  const name = dotted(section, key, index);
  const quoted = typeof v === 'string' && (kind === 'number' || kind === 'boolean') ? ' (without quotes)' : '';
  return { path, code: 'CONFIG_TYPE', message: `${name} must be ${KIND_TEXT[kind]}, got ${typeName(v)}`, fix: `write \`${key}\` as ${KIND_TEXT[kind]}${quoted}` };
}

function checkTable(section: SchemaSection, t: Table, path: KeyPath, out: ConfigProblem[], entry?: { index: number; table: Table }): void {
  for (const [key, v] of Object.entries(t)) {
    const kind = kindOf(section, key);
    // Sections are checked by schemaProblems itself.
    if (section === 'root' && kind === undefined && (TABLE_SECTIONS.includes(key) || ARRAY_SECTIONS.has(key) || looksLikeSection(v))) continue;
    if (kind === undefined) out.push(unknownKey(section, key, [...path, key], entry));
    else if (!accepts(kind, v)) out.push(wrongType(section, key, kind, v, [...path, key], entry?.index));
  }
}

/** Every unknown section or key and every value of the wrong type in a parsed config, in document order of the parser. */
export function schemaProblems(doc: Table): ConfigProblem[] {
  const out: ConfigProblem[] = [];
  for (const [key, v] of Object.entries(doc)) {
    if (TABLE_SECTIONS.includes(key)) {
      const section = key as SchemaSection;
      if (!isTable(v)) {
        const fix = Array.isArray(v) ? `write [${key}] (one pair of brackets), not [[${key}]]` : `write the keys of [${key}] under a [${key}] header`;
        out.push({ path: [key], code: 'CONFIG_TYPE', message: `[${key}] must be a table, got ${typeName(v)}`, fix });
      } else checkTable(section, v, [key], out);
    } else if (ARRAY_SECTIONS.has(key)) {
      const section = key as SchemaSection;
      if (!Array.isArray(v) || !v.every(isTable)) {
        out.push({ path: [key], code: 'CONFIG_TYPE', message: `[[${key}]] must be an array of tables, got ${typeName(v)}`, fix: `write each entry under its own [[${key}]] header (two pairs of brackets)` });
      } else v.forEach((t, index) => checkTable(section, t, [key, index], out, { index, table: t }));
    } else if (looksLikeSection(v) && kindOf('root', key) === undefined) {
      out.push(unknownSection(key, Array.isArray(v)));
    }
  }
  checkTable('root', doc, [], out);
  return out;
}

/** A table, or an array of tables (`[[name]]`). */
function looksLikeSection(v: unknown): boolean {
  return isTable(v) || (Array.isArray(v) && v.length > 0 && v.every(isTable));
}

function unknownSection(key: string, array: boolean): ConfigProblem {
  const label = (s: string, a: boolean): string => (a ? `[[${s}]]` : `[${s}]`);
  const mine = label(key, array);
  const near = nearest(key, [...TABLE_SECTIONS, ...ARRAY_SECTIONS]);
  if (near !== undefined) {
    const theirs = label(near, ARRAY_SECTIONS.has(near));
    return { path: [key], code: 'CONFIG_UNKNOWN_SECTION', message: `unknown section ${mine} — did you mean ${theirs}?`, fix: `rename ${mine} to ${theirs}` };
  }
  const known = [...TABLE_SECTIONS.map((s) => label(s, false)), ...[...ARRAY_SECTIONS].map((s) => label(s, true))].join(', ');
  return { path: [key], code: 'CONFIG_UNKNOWN_SECTION', message: `unknown section ${mine} (known sections: ${known})`, fix: `remove ${mine}, or see README "Configuration" for the sections` };
}
