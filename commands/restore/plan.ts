import { Args, Flags } from '@oclif/core';
import { targetWord } from '../../src/services/push/source.js';
import { formatBytes } from '../../src/cli/format.js';
import { textTable } from '../../src/cli/table.js';
import { BaseCommand } from '../../src/cli/base-command.js';
import { describeMonths } from '../../src/planner/restore-plan.js';
import { restorePlan, type RestorePlanResult } from '../../src/services/restore/index.js';

export default class RestorePlan extends BaseCommand {
  static override summary = 'Plan a restore month by month within the free egress allowance (or a budget, or at once) and save the plan.';
  static override description = `Resolves the chain that restores the snapshot (full stream, then incrementals in order) from the local manifest and schedules its volumes into calendar months so that each month's download stays within the free egress allowance minus a reserve (default from [restore] in the config), or the fastest schedule within --budget, or everything now with --asap. Shows cost per month (retrieval, requests, temporary copy, egress above the allowance), the finish date and the peak staging disk. Spends nothing; needs no passphrase. The plan is saved for "zbk restore run" (progress of an earlier unfinished plan of the same chain is kept; --reset drops it). A plan whose cheapest schedule is over --budget is shown with --dry-run but never saved (exit 2, OVER_BUDGET).

Exit codes: 0 ok, 2 bad flags, 3 config, 9 manifest (no such snapshot, broken chain: the missing snapshot is named).`;
  static override examples = [
    '<%= config.bin %> restore plan tank/photos',
    '<%= config.bin %> restore plan tank/photos --snapshot daily-2024-06-01 --free-egress-gb 100 --reserve-gb 20',
    '<%= config.bin %> restore plan tank/photos --budget 25',
    '<%= config.bin %> restore plan tank/photos --asap --tier Standard --json',
  ];
  static override args = { dataset: Args.string({ description: 'Dataset whose pushed snapshot to restore.', required: true }) };
  static override flags = {
    snapshot: Flags.string({ description: 'Short name of the snapshot to restore (default: the last pushed).' }),
    'free-egress-gb': Flags.string({ description: 'Free egress per calendar month, GB (default: config, 100).' }),
    'reserve-gb': Flags.string({ description: 'GB of each month\'s allowance kept for other use (default: config, 10).' }),
    budget: Flags.string({ description: 'Fastest schedule whose total cost stays within this many USD.' }),
    asap: Flags.boolean({ description: 'Everything now; the egress cost is shown.' }),
    tier: Flags.string({ description: 'Restore tier (default: config, Bulk).', options: ['Bulk', 'Standard'] }),
    'download-days': Flags.integer({ description: 'Days per month allowed for the downloads after the thaw (1–28, default 7).' }),
    'dry-run': Flags.boolean({ description: 'Show the plan without saving it.' }),
    reset: Flags.boolean({ description: 'Start over: drop an unfinished earlier plan\'s progress and target (staged files are fetched again). A finished restore always starts over.' }),
  };

  async run(): Promise<RestorePlanResult> {
    const { args, flags } = await this.parse(RestorePlan);
    const num = (v: string | undefined, what: string): number | undefined => {
      if (v === undefined) return undefined;
      const n = Number(v);
      if (!Number.isFinite(n) || n < 0) this.error(`--${what} must be a non-negative number`, { exit: 2 });
      return n;
    };
    const result = await restorePlan(this.context(flags), {
      dataset: args.dataset,
      ...(flags.snapshot ? { snapshot: flags.snapshot } : {}),
      ...(flags['free-egress-gb'] !== undefined ? { freeEgressGB: num(flags['free-egress-gb'], 'free-egress-gb') } : {}),
      ...(flags['reserve-gb'] !== undefined ? { reserveGB: num(flags['reserve-gb'], 'reserve-gb') } : {}),
      ...(flags.budget !== undefined ? { budgetUSD: num(flags.budget, 'budget') } : {}),
      asap: flags.asap,
      ...(flags.tier ? { tier: flags.tier as 'Bulk' | 'Standard' } : {}),
      ...(flags['download-days'] !== undefined ? { downloadDays: flags['download-days'] } : {}),
      dryRun: flags['dry-run'],
      reset: flags.reset,
    });
    const fmt = formatBytes;
    this.say(`${result.dataset}@${result.snapshot}: ${result.chain.length} stream(s), ${result.chain.reduce((a, c) => a + c.volumes, 0)} volume(s), ${fmt(result.totalBytes)}`);
    for (const c of result.chain) this.say(`  ${c.kind.padEnd(11)} ${c.from ? `@${c.from} → ` : ''}@${c.to}: ${c.volumes} volume(s), ${fmt(c.bytes)}`);
    const { header, rows } = describeMonths(result);
    const t = textTable(header);
    for (const r of rows) t.push(r);
    this.say(t.toString());
    this.say(
      `mode ${result.mode}, ${restoreStepText(result)}; ${result.monthlyCapacityGB} GB usable per month; finish by ${result.finish.slice(0, 10)}; ` +
        `peak staging disk ${fmt(result.stagingBytes)}; total ≈ $${result.totalCost.toFixed(2)}`,
    );
    this.say(result.saved ? `plan saved${result.keptProgress ? ' (progress so far kept)' : ''}: next, "zbk restore run ${result.dataset} --target ${targetWord(result.dataset)}" daily` : 'dry run: plan not saved');
    return result;
  }
}

/** The thaw as the provider does it: a tier (AWS), Days only (Scaleway, OVH), or no thaw (GCS Archive, hot stores). */
function restoreStepText(plan: RestorePlanResult): string {
  if (plan.restoreStep === 'none') return 'no thaw (readable at once)';
  if (plan.restoreStep === 'days-only') return 'thaw with Days (no tier)';
  return `tier ${plan.tier}`;
}
