/**
 * Retention: which pushed snapshots must stay restorable.
 *
 * Pure. Rules work like restic's `forget --keep-last/--keep-monthly/
 * --keep-yearly`: keep the newest N snapshots; for each of the last N
 * calendar months (UTC) *that have snapshots*, keep the newest snapshot of
 * that month; likewise for years. The newest snapshot is always kept, even
 * with every rule at 0: zbk never plans away the latest restore point.
 */

/** A snapshot that has been pushed. Guids are decimal strings (64-bit). */
export interface PushedSnapshot {
  guid: string;
  name: string;
  creation: Date;
}

export interface RetentionRules {
  keepLast: number;
  keepMonthly: number;
  keepYearly: number;
}

export interface RetainedSnapshot extends PushedSnapshot {
  /** Why it is kept, e.g. `latest`, `last 2`, `monthly 2026-05`, `yearly 2025`. */
  reasons: string[];
}

export interface RetentionResult {
  /** Kept snapshots, newest first. */
  kept: RetainedSnapshot[];
  keptGuids: Set<string>;
  /** Snapshots no rule keeps, newest first. */
  dropped: PushedSnapshot[];
}

function monthKey(d: Date): string {
  return `${d.getUTCFullYear()}-${String(d.getUTCMonth() + 1).padStart(2, '0')}`;
}

function yearKey(d: Date): string {
  return String(d.getUTCFullYear());
}

/**
 * Apply `rules` to `snapshots` (any order). Ties on creation time are
 * broken by name, then guid, so the result is deterministic.
 */
export function applyRetention(snapshots: readonly PushedSnapshot[], rules: RetentionRules): RetentionResult {
  const sorted = [...snapshots].sort(
    (a, b) => b.creation.getTime() - a.creation.getTime() || b.name.localeCompare(a.name) || b.guid.localeCompare(a.guid),
  );
  const reasons = new Map<string, string[]>();
  const add = (s: PushedSnapshot, why: string): void => {
    const r = reasons.get(s.guid) ?? [];
    r.push(why);
    reasons.set(s.guid, r);
  };
  if (sorted[0]) add(sorted[0], 'latest');
  sorted.slice(0, Math.max(0, Math.floor(rules.keepLast))).forEach((s, i) => add(s, `last ${i + 1}`));

  const bucketRule = (n: number, key: (d: Date) => string, label: string): void => {
    const seen = new Set<string>();
    for (const s of sorted) {
      if (seen.size >= n) break;
      const k = key(s.creation);
      if (seen.has(k)) continue;
      // Newest first, so the first snapshot met in a bucket is its newest.
      seen.add(k);
      add(s, `${label} ${k}`);
    }
  };
  bucketRule(Math.max(0, Math.floor(rules.keepMonthly)), monthKey, 'monthly');
  bucketRule(Math.max(0, Math.floor(rules.keepYearly)), yearKey, 'yearly');

  const kept: RetainedSnapshot[] = [];
  const dropped: PushedSnapshot[] = [];
  for (const s of sorted) {
    const r = reasons.get(s.guid);
    if (r) kept.push({ ...s, reasons: r });
    else dropped.push(s);
  }
  return { kept, keptGuids: new Set(kept.map((k) => k.guid)), dropped };
}
