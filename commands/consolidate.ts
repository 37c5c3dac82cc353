import { Args, Flags } from '@oclif/core';
import { formatBytes } from '../src/cli/format.js';
import { BaseCommand } from '../src/cli/base-command.js';
import { CONSOLIDATION_TIMINGS, type ConsolidationTiming } from '../src/planner/consolidate-plan.js';
import { consolidate, type ConsolidateResult, type DatasetConsolidation } from '../src/services/consolidate/run.js';

export default class Consolidate extends BaseCommand {
  static override summary = 'Re-base long snapshot chains on a new full stream when that pays back and the cheapest interval between fulls has come; delete what no kept snapshot needs.';
  static override description = `Without --apply (or with --dry-run) only reports, per dataset: which pushed snapshots retention keeps ([retention] keep_last, keep_monthly, keep_yearly; the latest always), whether a new full of the latest pushed snapshot pays back within the horizon (upload cost and early-deletion charges against the storage it frees) and whether the chain has reached the cheapest interval between fulls for its own rate of waste (--timing interval, the default: a full made too early pays for two copies until the old one's minimum duration ends), the restore before and after, and which objects no kept snapshot needs: deletable now, or on/after the date their minimum storage duration (180 days for Deep Archive) ends.

With --apply: pushes the new full, verifies it in the store, marks the streams it replaces superseded, deletes unneeded objects that are past their minimum duration, and mirrors the manifest. Younger objects stay scheduled: run "zbk consolidate --apply" again later (a monthly timer is enough) to delete them once free. Nothing a kept snapshot needs is ever deleted, and nothing is deleted early unless --allow-early-delete is given (the charge is shown in the report first). A run killed at any point is finished by the next --apply. Push never deletes anything.

Exit codes: 0 ok, 1 failed, 2 bad input, 3 config, 4 passphrase, 5 store, 6 integrity (new full failed verification), 7 zfs, 8 locked or writer lease held (--no-wait) or lost, 9 manifest.`;
  static override examples = [
    '<%= config.bin %> consolidate',
    '<%= config.bin %> consolidate tank/photos --apply',
    '<%= config.bin %> consolidate --apply --allow-early-delete --dry-run',
  ];
  static override strict = false;
  static override args = { dataset: Args.string({ description: 'Dataset(s) (default: every pushed dataset).' }) };
  static override flags = {
    apply: Flags.boolean({ description: 'Carry out the plan (push, supersede, delete what is due).' }),
    'dry-run': Flags.boolean({ description: 'Report only, even with --apply.' }),
    'allow-early-delete': Flags.boolean({ description: 'Also delete unneeded objects younger than their minimum storage duration (charged pro rata; shown).' }),
    horizon: Flags.integer({ description: 'Months within which a consolidation must pay back (default 24).' }),
    timing: Flags.string({
      options: [...CONSOLIDATION_TIMINGS],
      description: 'interval: recommend once the chain is as old as the cheapest interval between fulls for its rate of waste; payback: as soon as a new full pays back within the horizon (a smaller restore sooner, more money over the years). Default: [consolidate] timing, else interval.',
    }),
    'no-wait': Flags.boolean({ description: 'Fail at once (exit 8) if another zbk holds the manifest lock.' }),
  };

  async run(): Promise<ConsolidateResult> {
    const { argv, flags } = await this.parse(Consolidate);
    const result = await consolidate(this.context(flags), {
      datasets: argv as string[],
      apply: flags.apply && !flags['dry-run'],
      allowEarlyDelete: flags['allow-early-delete'],
      horizonMonths: flags.horizon,
      ...(flags.timing ? { timing: flags.timing as ConsolidationTiming } : {}),
      wait: !flags['no-wait'],
    });
    for (const d of result.datasets) this.describe(d, result.applied);
    if (result.finishedPending.length) this.say(`finished an interrupted deletion of ${result.finishedPending.length} object(s)`);
    if (!result.applied) this.say('\n(report only: nothing changed; add --apply to act)');
    for (const w of result.warnings) this.note(`warning: ${w}`);
    return result;
  }

  private describe(d: DatasetConsolidation, applied: boolean): void {
    const fmt = formatBytes;
    const $ = (n: number): string => `$${n.toFixed(4)}`;
    this.say(`\n${d.dataset}: latest pushed @${d.latest?.name ?? '-'}`);
    this.say(`  kept: ${d.kept.map((k) => `@${k.name} (${k.reasons.join(', ')})`).join('; ') || '-'}${d.dropped.length ? `; not kept: ${d.dropped.map((n) => `@${n}`).join(', ')}` : ''}`);
    const p = d.plan;
    if (p) {
      this.say(`  ${p.recommend ? 'consolidation recommended' : 'no consolidation'}: ${p.reason}`);
      this.say(
        `  new full ≈ ${fmt(p.newFull.bytes)} in ${p.newFull.volumes} object(s): upload ${$(p.newFull.uploadCost)}, ${$(p.newFull.monthlyCost)}/month; ` +
          `saves ${$(p.monthlySavings)}/month once old objects are deleted; break-even ${p.breakEvenMonth === null ? 'none' : `month ${p.breakEvenMonth}`} of ${p.horizonMonths}` +
          (p.earlyDeletionCharges > 0 ? `; early-deletion charges ${$(p.earlyDeletionCharges)}` : ''),
      );
      this.say(`  restore of the latest: ${fmt(p.restoreBefore.bytes)} over ${p.restoreBefore.months} month(s) now, ${fmt(p.restoreAfter.bytes)} over ${p.restoreAfter.months} after`);
      if (p.recommend && !applied) this.say(`  --apply would delete ${p.deleteNow.length} object(s) of the old chain now and schedule ${p.deleteLater.length}`);
    }
    if (d.blocked) this.say(`  cannot consolidate now: ${d.blocked}`);
    if (d.resumed) this.say(applied ? '  continued an interrupted consolidation' : '  an interrupted consolidation is pending: run --apply to finish it');
    if (d.consolidated) this.say(`  pushed new full @${d.consolidated.snapshot} (${fmt(d.consolidated.storedBytes)}); superseded ${d.consolidated.superseded.length} stream(s)`);
    if (applied) {
      this.say(`  deleted ${d.deleted.length} object(s), ${fmt(d.deleted.reduce((n, x) => n + x.bytes, 0))}${d.earlyDeletionCharges > 0 ? `, early-deletion charges ${$(d.earlyDeletionCharges)}` : ''}`);
    } else if (d.schedule.due.length) {
      const charge = d.schedule.due.reduce((n, x) => n + x.earlyDeletionCharge, 0);
      this.say(`  deletable now: ${d.schedule.due.length} object(s), ${fmt(d.schedule.due.reduce((n, x) => n + x.bytes, 0))}${charge > 0 ? `, early-deletion charges ${$(charge)}` : ''}`);
    }
    const later = d.schedule.later;
    if (later.length) this.say(`  scheduled: ${later.length} object(s), ${fmt(later.reduce((n, x) => n + x.bytes, 0))}, free to delete from ${later[0]!.notBefore.slice(0, 10)} to ${later[later.length - 1]!.notBefore.slice(0, 10)}`);
    for (const w of p?.warnings ?? []) this.note(`warning: ${d.dataset}: ${w}`);
  }
}
