import { Flags } from '@oclif/core';
import { formatBytes, formatUSD } from '../../src/cli/format.js';
import { textTable } from '../../src/cli/table.js';
import { BaseCommand } from '../../src/cli/base-command.js';
import { costReport, type CostLine, type CostResult } from '../../src/services/cost.js';

export default class Cost extends BaseCommand {
  static override summary = 'Estimate the current monthly bill, with its breakdown, and project it forward.';
  static override description = `Reads the local manifest only (no passphrase, no store request). The bill is storage: data at the class rate plus the 40 KB per-object archive overhead, and Standard-rate storage of unfinished multipart uploads. The projection assumes the pushes of the last 90 days continue at the same rate and that objects scheduled for deletion (superseded by "zbk consolidate", or kept by no retention rule) are deleted by "zbk consolidate --apply" as soon as their minimum storage duration is over. Prices come from the dated price table plus [prices] overrides; a stale table is warned about.

Exit codes: 0 ok, 2 bad flags, 3 config, 9 manifest.`;
  static override examples = ['<%= config.bin %> cost', '<%= config.bin %> cost --months 36 --json'];
  static override flags = {
    months: Flags.integer({ description: 'Months to project (1–1200).', default: 12 }),
  };

  async run(): Promise<CostResult> {
    const { flags } = await this.parse(Cost);
    const r = costReport(this.context(flags), { months: flags.months });
    const $ = (n: number): string => `$${n.toFixed(4)}`;
    const fmt = formatBytes;
    const table = (title: string, rows: CostLine[]): void => {
      const t = textTable([title, 'objects', 'stored', 'data', 'overhead', 'total / month']);
      for (const l of rows) t.push([l.name, l.objects, fmt(l.storedBytes), $(l.data), $(l.overhead), $(l.total)]);
      this.say(t.toString());
    };
    this.say(`monthly bill ≈ ${$(r.monthly)} (prices ${r.priceTable.region} as of ${r.priceTable.asOf})`);
    if (r.byDataset.length) table('dataset', r.byDataset);
    if (r.byClass.length) table('class', r.byClass);
    if (r.staging.parts) this.say(`unfinished uploads: ${r.staging.parts} part(s), ${fmt(r.staging.bytes)} at Standard rate ≈ ${$(r.staging.monthly)}/month, ${formatUSD(r.staging.daily)}/day (the next push resumes or aborts them)`);
    if (r.scheduledDeletions.objects) {
      this.say(
        `scheduled deletions: ${r.scheduledDeletions.objects} object(s), ${fmt(r.scheduledDeletions.bytes)}, saving ${$(r.scheduledDeletions.monthlySaving)}/month` +
          (r.scheduledDeletions.lastNotBefore ? ` (all free by ${r.scheduledDeletions.lastNotBefore.slice(0, 10)}; run "zbk consolidate --apply" then)` : ''),
      );
    }
    const p = textTable(['month', 'from', 'existing', 'growth', 'total']);
    for (const m of r.projection) p.push([m.month, m.from.slice(0, 10), $(m.existing), $(m.growth), $(m.total)]);
    this.say(`projection (recent growth ${fmt(r.recentGrowthBytesPerMonth)}/month):\n${p.toString()}\ntotal over ${r.projection.length} months ≈ ${$(r.projectionTotal)}`);
    for (const w of r.warnings) this.note(`warning: ${w}`);
    return r;
  }
}
