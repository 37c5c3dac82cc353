/**
 * Capability detection. OpenZFS answers `zfs version` (added in 0.8, and
 * everything zbk uses — raw/compressed/large-block sends, estimates, resume
 * tokens, bookmarks, `zfs holds`, `list -p` — predates that). Anything else
 * (zfs-fuse, old Solaris-derived ports) is judged by the flags its usage text
 * (`zfs -?`) documents, because guessing wrong either corrupts a stream
 * choice or fails mid-push.
 */
import { parseZfsVersion } from './parse.js';
import type { ZfsCapabilities } from './types.js';

/** Flags and subcommands a `zfs` usage text documents. */
export interface UsageInfo {
  commands: Set<string>;
  sendFlags: Set<string>;
  receiveFlags: Set<string>;
  listFlags: Set<string>;
}

/** Parse the usage text (`zfs -?`): every `\tcommand [-flags] ...` line. */
export function parseUsage(text: string): UsageInfo {
  const info: UsageInfo = { commands: new Set(), sendFlags: new Set(), receiveFlags: new Set(), listFlags: new Set() };
  for (const raw of text.split('\n')) {
    const m = /^\t([a-z]+)\b(.*)$/.exec(raw);
    if (!m) continue;
    const [, cmd, rest] = m as unknown as [string, string, string];
    info.commands.add(cmd);
    const target =
      cmd === 'send' ? info.sendFlags : cmd === 'receive' || cmd === 'recv' ? info.receiveFlags : cmd === 'list' ? info.listFlags : null;
    if (!target) continue;
    // Bracketed flag groups like `[-RDp]` or `[-rH]`; `[-[iI] snapshot]` contributes i and I.
    for (const g of rest.matchAll(/\[-\[?([A-Za-z]+)\]?/g)) for (const ch of g[1]!) target.add(ch);
    for (const g of rest.matchAll(/(?:^|\s)-([A-Za-z])\b/g)) target.add(g[1]!);
  }
  return info;
}

/** Everything OpenZFS ≥ 0.8 (the first with `zfs version`) can do. */
function openzfs(version: string): ZfsCapabilities {
  return {
    implementation: 'openzfs',
    version,
    rawSend: true,
    compressedSend: true,
    largeBlocks: true,
    embeddedData: true,
    sendEstimate: true,
    resumeTokens: true,
    bookmarks: true,
    holdsList: true,
    listParsable: true,
  };
}

/**
 * Decide capabilities from the probes.
 * @param versionOutput stdout+stderr of `zfs version` and whether it exited 0.
 * @param usageText stdout+stderr of `zfs -?` (only consulted without `zfs version`).
 */
export function detectCapabilities(versionOutput: { ok: boolean; text: string }, usageText: string): ZfsCapabilities {
  const version = versionOutput.ok ? parseZfsVersion(versionOutput.text) : null;
  if (version) return openzfs(version);
  const u = parseUsage(usageText);
  const hasVersionCmd = u.commands.has('version');
  const looksLikeFuse =
    !versionOutput.ok && /unrecognized command 'version'/.test(versionOutput.text) && u.commands.has('send') && !u.commands.has('bookmark');
  const implementation = looksLikeFuse && !hasVersionCmd ? 'zfs-fuse' : 'unknown';
  return {
    implementation,
    version: null,
    rawSend: u.sendFlags.has('w'),
    compressedSend: u.sendFlags.has('c'),
    largeBlocks: u.sendFlags.has('L'),
    embeddedData: u.sendFlags.has('e'),
    sendEstimate: u.sendFlags.has('n') && u.sendFlags.has('P'),
    resumeTokens: u.receiveFlags.has('s') && u.sendFlags.has('t'),
    bookmarks: u.commands.has('bookmark'),
    // zfs-fuse documents `holds` but its implementation is a missing python helper.
    holdsList: implementation !== 'zfs-fuse' && u.commands.has('holds'),
    listParsable: u.listFlags.has('p'),
  };
}
