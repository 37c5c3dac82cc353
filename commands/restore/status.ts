import { Args } from '@oclif/core';
import { formatBytes } from '../../src/cli/format.js';
import { textTable } from '../../src/cli/table.js';
import { BaseCommand } from '../../src/cli/base-command.js';
import { restoreStatus, type RestoreStatusResult } from '../../src/services/restore/index.js';

export default class RestoreStatus extends BaseCommand {
  static override summary = 'Show saved restores: per month and per volume, state, bytes downloaded, money spent against the plan, and the next action.';
  static override description = `Reads the local manifest only; needs no passphrase and makes no store request.

A volume whose object is missing or whose bytes failed authentication is "damaged": it is never fetched again (that would only cost egress), and the restore says which snapshots are still restorable and what to do ("zbk push --full" while the source has the data, or a plan for an earlier snapshot).

Exit codes: 0 ok, 3 config, 9 manifest.`;
  static override examples = ['<%= config.bin %> restore status', '<%= config.bin %> restore status tank/photos --json'];
  static override args = { dataset: Args.string({ description: 'Only this dataset.' }) };

  async run(): Promise<RestoreStatusResult> {
    const { args, flags } = await this.parse(RestoreStatus);
    const result = await restoreStatus(this.context(flags), args.dataset);
    const fmt = formatBytes;
    if (result.restores.length === 0) this.say('no saved restore: run "zbk restore plan <dataset>"');
    for (const j of result.restores) {
      this.say(`\n${j.dataset}@${j.snapshot} → ${j.target ?? '(target set by the first run)'}: ${j.mode}, ${j.tier}; ${fmt(j.totalBytes)}; received ${j.receivedSnapshots.map((s) => `@${s}`).join(', ') || 'nothing yet'}`);
      const t = textTable(['month', 'volume', 'snapshot', 'state', 'size', 'downloaded', 'requests', 'copy expires']);
      for (const m of j.months) {
        t.push([{ colSpan: 8, content: `${m.month}: planned $${m.plannedCost.toFixed(2)}, spent $${m.spent.toFixed(2)}, downloaded ${fmt(m.downloadedBytes)} of ${fmt(m.bytes)}` }]);
        for (const v of m.volumes) t.push(['', v.key, `@${v.snapshot}`, v.phase + (v.lastError ? ' (!)' : ''), fmt(v.bytes), fmt(v.downloadedBytes), v.restoreRequests, v.restoreExpiry?.slice(0, 16) ?? '']);
      }
      this.say(t.toString());
      this.say(`spent $${j.spent.toFixed(2)} of planned $${j.plannedCost.toFixed(2)}; planned finish ${j.finish.slice(0, 10)}${j.finishedAt ? `; finished ${j.finishedAt.slice(0, 19)}` : ''}`);
      if (j.next && j.next.kind !== 'blocked') this.say(`next: ${j.next.what}${j.next.at ? ` (after ${j.next.at})` : ''}`);
      if (j.blocked) {
        this.say(`BLOCKED: ${j.blocked.remedy}`);
        for (const d of j.blocked.damaged) this.say(`  damaged ${d.key} (stream to @${d.snapshot}): ${d.problem}`);
      }
      for (const m of j.months) for (const v of m.volumes) if (v.lastError) this.note(`${v.key}: ${v.lastError}`);
    }
    return result;
  }
}
