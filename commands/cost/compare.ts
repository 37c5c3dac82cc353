import { Flags } from '@oclif/core';
import { formatBytes } from '../../src/cli/format.js';
import { textTable } from '../../src/cli/table.js';
import { BaseCommand } from '../../src/cli/base-command.js';
import { costCompare, type CostCompareResult } from '../../src/services/cost-compare.js';

export default class CostCompare extends BaseCommand {
  static override summary = 'Price this repository on every provider profile over years, with one full restore.';
  static override description = `Reads the local manifest only (no passphrase, no store request). The repository's stored data, the growth and push rate of its last 90 days (as "zbk cost" projects them), consolidated by zbk's planner under each provider's minimum storage duration and part limit, then one full restore of the latest snapshot at the end within the provider's free egress allowance. Figures are USD; EUR profiles are converted at their stated rate ([prices] eur_to_usd overrides it). The config's other [prices] overrides apply to its own provider only. The model and its assumptions: docs/COSTS.md "Comparing providers".

Exit codes: 0 ok, 2 bad flags, 3 config, 9 manifest.`;
  static override examples = ['<%= config.bin %> cost compare', '<%= config.bin %> cost compare --months 60 --json'];
  static override flags = {
    months: Flags.integer({ description: 'Horizon in months (1–1200).', default: 120 }),
  };

  async run(): Promise<CostCompareResult> {
    const { flags } = await this.parse(CostCompare);
    const r = costCompare(this.context(flags), { months: flags.months });
    const $ = (n: number): string => `$${n.toFixed(2)}`;
    const w = r.workload;
    this.say(
      `${r.months} months from ${formatBytes(w.initialGB * 1e9)} stored, growing ${formatBytes(w.growthGBPerMonth * 1e9)}/month in ~${w.pushesPerMonth} push(es)/month (last 90 days), consolidated by zbk's planner:`,
    );
    const t = textTable(['provider', 'now / month', 'storage', 'requests', 'early del.', 'total', 'restore (months)', 'total + restore']);
    for (const p of r.providers) {
      t.push([`${p.provider}${p.current ? ' *' : ''}`, `$${p.monthlyNow.toFixed(4)}`, $(p.storage), $(p.requests), $(p.earlyDeletion), $(p.total), `${$(p.restoreCost)} (${p.restoreMonths})`, $(p.totalWithRestore)]);
    }
    this.say(t.toString());
    this.say(`* configured provider (${r.provider}); cheapest over ${r.months} months: ${r.cheapest}. Prices as of each profile's table; EUR at the stated rate.`);
    const warnings = new Set(r.providers.flatMap((p) => p.warnings));
    for (const warning of warnings) this.note(`warning: ${warning}`);
    return r;
  }
}
