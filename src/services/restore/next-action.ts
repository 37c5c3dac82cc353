/**
 * What a restore does next, and when: the `next` a step saves in the job and
 * `restore run` and `restore status` print (done, blocked by damage, poll a
 * running thaw, or wait until a request time or a month's allowance). The
 * time a timer should run again is the earliest of what the pending volumes
 * wait for.
 */
import { blockedAction, isBlocked, restoreBlock } from './damage.js';
import { monthOf, type JobVolume, type NextAction } from './job.js';
import type { RestoreStep } from './step.js';
import { DAY_MS, LEAD_DAYS } from './thaw.js';

export function nextAction(step: RestoreStep): NextAction {
  if (step.job.streams.every((s) => s.received)) return { kind: 'done', at: null, what: `restored @${step.job.snapshot.name} into ${step.target}` };
  const block = restoreBlock(step.manifest, step.job);
  const pending = step.job.volumes.filter((v) => v.phase !== 'received' && v.phase !== 'staged' && !isBlocked(step.job, v));
  if (block && pending.length === 0) return blockedAction(block);
  const next = pendingAction(step, pending);
  return block ? { ...next, what: `${next.what}, for the snapshots before the damage; then ${block.remedy}` } : next;
}

/** The next step for the `pending` volumes. */
function pendingAction(step: RestoreStep, pending: JobVolume[]): NextAction {
  const restoring = pending.filter((v) => v.phase === 'restoring');
  if (restoring.length > 0) return { kind: 'poll', at: null, what: `wait for ${restoring.length} restore(s) to complete, then download` };
  const times: { at: number; what: string }[] = [];
  for (const v of pending) {
    if (v.phase === 'scheduled' || (v.phase === 'downloading' && v.notBefore && Date.parse(v.notBefore) > step.now.getTime())) {
      const m = step.planMonth(v);
      const at = Math.max(m ? Date.parse(m.requestAt) : 0, v.notBefore ? Date.parse(v.notBefore) : 0);
      times.push({ at, what: `request the restore of ${v.key}` });
    } else if (v.phase === 'ready' || v.phase === 'downloading') {
      const d = step.now;
      const cur = monthOf(d);
      const nextMonth = Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1);
      const at = cur < v.month ? Date.parse(`${v.month}-01T00:00:00Z`) : nextMonth;
      const expiry = v.restoreExpiry ? Date.parse(v.restoreExpiry) : Number.POSITIVE_INFINITY;
      const lead = LEAD_DAYS[step.job.options.tier] * DAY_MS;
      if (expiry >= at) times.push({ at, what: `download within the ${monthOf(new Date(at))} egress allowance` });
      // The copy expires before then: thaw it again in time for that month (as soon as it is gone).
      else times.push({ at: Math.max(at - lead, expiry + 60_000), what: `request the restore of ${v.key} again for the ${monthOf(new Date(at))} egress allowance` });
    }
  }
  times.sort((a, b) => a.at - b.at);
  const first = times[0];
  if (!first || first.at <= step.now.getTime()) return { kind: 'poll', at: null, what: 'run again' };
  return { kind: 'wait-until', at: new Date(first.at).toISOString(), what: first.what };
}
