import { Args, Flags } from '@oclif/core';
import { chainRows, isElided } from '../src/cli/chain-rows.js';
import { formatBytes, formatUSD } from '../src/cli/format.js';
import { textTable } from '../src/cli/table.js';
import { BaseCommand } from '../src/cli/base-command.js';
import { status, type StatusResult } from '../src/services/status.js';

export default class Status extends BaseCommand {
  static override summary = 'Show pushed chains, last pushes, in-flight uploads (bytes so far, staging cost) and orphan uploads, and the monthly cost.';
  static override description = `Reads the local manifest and the store's list of unfinished multipart uploads. Needs no passphrase.

Exit codes: 0 ok, 3 config, 5 store, 9 manifest.`;
  static override examples = ['<%= config.bin %> status', '<%= config.bin %> status tank/photos --json'];
  static override args = { dataset: Args.string({ description: 'Only this dataset.' }) };
  static override flags = {
    all: Flags.boolean({ description: 'Print every link of each chain (by default the full, the 10 newest and every damaged link; the others are summed in one row). --json always has every link.' }),
  };

  async run(): Promise<StatusResult> {
    const { args, flags } = await this.parse(Status);
    const result = await status(this.context(flags), args.dataset);
    const fmt = formatBytes;
    this.say(`store: ${result.store}`);
    for (const d of result.datasets) {
      this.say(`\n${d.dataset}: latest pushed @${d.latestPushed ?? '-'} at ${d.lastPushAt ?? '-'}; ${fmt(d.storedBytes)} in ${d.objects} object(s); ≈ $${d.monthlyCost.toFixed(4)}/month`);
      const t = textTable(['kind', 'from', 'to', 'snapshot created', 'data', 'stored', 'objects', 'pushed', 'health']);
      for (const c of chainRows(d.chain, { all: flags.all })) {
        if (isElided(c)) {
          t.push(['…', '', `${c.count} incrementals, @${c.from} … @${c.to}`, '', fmt(c.plaintextBytes), fmt(c.storedBytes), c.objects, '', 'ok']);
          continue;
        }
        t.push([c.kind, c.from ?? '', c.to, c.snapshotCreated.slice(0, 19), fmt(c.plaintextBytes), fmt(c.storedBytes), c.objects, c.pushedAt?.slice(0, 19) ?? '', c.damaged.length ? `DAMAGED (${c.damaged.length})` : 'ok']);
      }
      if (d.chain.length) this.say(t.toString());
      const h = d.integrity;
      if (d.health === 'broken') {
        this.say(`CHAIN BROKEN: @${h.latest ?? '-'} cannot be restored`);
        for (const o of h.brokenBy) this.say(`  ${o.key} (stream to @${o.snapshot}): ${o.problem} (found by ${o.foundBy} at ${o.foundAt.slice(0, 19)})`);
        this.say(`  ${h.remedy ?? ''}`);
      } else if (h.unrestorable.length) {
        this.say(`older snapshots not restorable (their chain includes a damaged object): @${h.unrestorable.join(', @')}`);
      }
      const records = h.damaged.filter((o) => o.volumeIndex === null);
      if (records.length) this.note(`${records.length} stream record(s) damaged (a "zbk manifest rebuild" would not find those streams): ${records.map((o) => o.key).join(', ')}`);
    }
    if (result.inFlight.length) {
      // Parts of an unfinished upload are billed at S3 Standard storage rates (multipart staging) until it completes.
      this.say(`\nin-flight uploads (resumed by the next push; their parts are billed at S3 Standard storage rates until each completes):`);
      for (const u of result.inFlight) {
        this.say(
          `  ${u.dataset} ${u.key} (started ${u.initiated?.slice(0, 19) ?? '?'}): ${u.parts} part(s), ${fmt(u.bytesUploaded)} uploaded so far; ` +
            `staging ≈ ${formatUSD(u.stagingCostPerMonth)}/month (${formatUSD(u.stagingCostPerDay)}/day)`,
        );
      }
      const s = result.staging;
      if (result.inFlight.length > 1) this.say(`  together: ${fmt(s.bytes)} in ${s.parts} part(s), staging ≈ ${formatUSD(s.monthly)}/month (${formatUSD(s.daily)}/day)`);
    }
    const due = result.orphans.filter((u) => u.abortable !== false);
    const waiting = result.orphans.filter((u) => !due.includes(u));
    if (due.length) this.say(`\norphan uploads (billed until aborted; the next push aborts them): ${due.map((u) => u.key).join(', ')}`);
    if (waiting.length) {
      this.say(`\nuploads of streams this manifest does not know (another machine's?), billed until aborted; a push aborts them once 48 h old:`);
      for (const u of waiting) this.say(`  ${u.key} (started ${u.initiated?.slice(0, 19) ?? '?'}, abortable from ${u.abortableFrom!.slice(0, 19)})`);
    }
    this.say(`\ntotal ≈ $${result.monthlyCost.toFixed(4)}/month (prices as of ${result.priceTableDate})`);
    return result;
  }
}
