import { Flags } from '@oclif/core';
import { formatBytes } from '../src/cli/format.js';
import { BaseCommand } from '../src/cli/base-command.js';
import { canPrompt, promptHidden } from '../src/cli/prompt.js';
import { applyLimit, LIMIT_DOWNLOAD_DESCRIPTION, parseLimitFlag } from '../src/cli/limit-flags.js';
import { verify, type VerifyResult } from '../src/services/verify.js';
import { verifyDeep, type DeepVerifyResult } from '../src/services/verify-deep.js';

export default class Verify extends BaseCommand {
  static override summary = 'Check that every object the manifest needs is in the store as pushed (size, ETag, metadata); --deep restores and compares.';
  static override description = `For every complete stream: each volume exists with the recorded size and storage class, the ETag the store reports is the one it reported when the push completed (so an object overwritten with other bytes of the same size is found, even with its metadata and class copied back), its sealed metadata decrypts and names the right stream, volume and snapshot; the stream record opens. Volumes pushed before zbk recorded ETags are checked for size and metadata only, and the output says how many. Uses LIST/HEAD and small GETs only: no archived data is restored, cost is a few requests per object. It does not prove that the bytes still decrypt and restore: --deep does.

Findings are recorded in the manifest: "zbk status" then shows the chain as broken, "zbk check" goes CRITICAL, and restores do not fetch a damaged object. The way out is "zbk push --full" (a new chain; "--dry-run" shows its cost); the output names the snapshots that are still restorable.

--deep is a restore drill: the chain of a pushed snapshot (default the latest) is downloaded, opened part by part, received into a scratch dataset in the same pool and compared file by file with a clone of the local snapshot; both scratch datasets are destroyed afterwards. On btrfs, the chain is received into a scratch directory next to zbk's pins (<mount>/.zbk/<dataset UUID>/verify-…) and compared with the pin of the snapshot (or the snapshot itself); the received subvolumes are deleted afterwards. When objects are archived (Deep Archive), the thaw cost is shown first and nothing is spent without confirmation (--yes, or answering the prompt); run it again once the restores are done. --limit-download RATE (or [restore] limit) caps the bytes the drill reads from the store, like "zbk restore run".

Exit codes: 0 everything verified, 1 the drill needs confirmation or is waiting for a thaw, 3 config, 4 passphrase, 5 store, 6 a missing or damaged object or restored files that differ, 7 zfs, 9 manifest.`;
  static override examples = [
    '<%= config.bin %> verify',
    '<%= config.bin %> verify --dataset tank/photos --json',
    '<%= config.bin %> verify --deep --dataset tank/photos',
    '<%= config.bin %> verify --deep --dataset tank/photos --snapshot autosnap_2026-01-01 --yes',
    '<%= config.bin %> verify --deep --dataset tank/photos --limit-download 2MiB/s',
  ];
  static override flags = {
    dataset: Flags.string({ description: 'Only this dataset (required with --deep when several are pushed).' }),
    deep: Flags.boolean({ description: 'Restore drill: restore into a scratch dataset and compare with the local snapshot.' }),
    snapshot: Flags.string({ description: 'With --deep: the pushed snapshot to drill (short name; default the latest).', dependsOn: ['deep'] }),
    yes: Flags.boolean({ description: 'With --deep: agree to pay for thawing archived objects.', dependsOn: ['deep'] }),
    'limit-download': Flags.string({ description: `With --deep: ${LIMIT_DOWNLOAD_DESCRIPTION}`, helpValue: 'RATE', dependsOn: ['deep'] }),
  };

  async run(): Promise<VerifyResult | DeepVerifyResult> {
    const { flags } = await this.parse(Verify);
    const limit = parseLimitFlag(flags['limit-download'], 'limit-download');
    const ctx = this.context(flags, (c) => applyLimit(c, 'download', limit));
    if (flags.deep) return this.deep(ctx, flags);
    const r = await verify(ctx, { dataset: flags.dataset });
    this.say(`${r.objectsChecked} object(s) of ${r.streams} stream(s) checked in ${r.store}`);
    for (const p of r.problems) this.say(`PROBLEM ${p.key}${p.dataset ? ` (${p.dataset})` : ''}: ${p.problem}`);
    if (r.unreferenced.length) {
      this.note(
        `${r.unreferenced.length} object(s) under data/ this manifest does not know: streams pushed from another machine or state dir, or uploads abandoned before they completed. ` +
          `Do not delete them by hand ("zbk manifest rebuild --force" brings in every stream whose record is in the store): ${r.unreferenced.slice(0, 5).join(', ')}`,
      );
    }
    this.say(`checked: ${r.coverage.proved}`);
    if (r.coverage.sizeAndMetadataOnly.length) this.note(`size and metadata only: ${r.coverage.sizeAndMetadataOnly.slice(0, 5).join(', ')}${r.coverage.sizeAndMetadataOnly.length > 5 ? ', …' : ''}`);
    this.say(r.coverage.needsDeep);
    for (const c of r.chains) {
      if (!c.ok) this.say(`BROKEN ${c.dataset}: @${c.latest ?? '-'} cannot be restored; ${c.remedy ?? ''}`);
      else if (c.unrestorable.length) this.say(`${c.dataset}: newest @${c.latest ?? '-'} restorable; not restorable (damaged chain): @${c.unrestorable.join(', @')}`);
    }
    this.say(
      r.ok
        ? `OK: every object present as pushed${r.coverage.sizeAndMetadataOnly.length ? ` (${r.coverage.sizeAndMetadataOnly.length} by size and metadata only)` : ''}; contents not restored (--deep does)`
        : `FAILED: ${r.problems.length} problem(s), recorded in the manifest ("zbk status" shows the chains)`,
    );
    if (!r.ok) process.exitCode = 6;
    return r;
  }

  private async deep(ctx: ReturnType<BaseCommand['context']>, flags: { dataset?: string; snapshot?: string; yes?: boolean }): Promise<DeepVerifyResult> {
    let r = await verifyDeep(ctx, { dataset: flags.dataset, snapshot: flags.snapshot, confirm: flags.yes });
    if (r.outcome === 'needs-confirmation' && !this.jsonEnabled() && canPrompt()) {
      const answer = await promptHidden(`${r.archivedObjects} archived object(s), ${formatBytes(r.bytes)}: thawing costs ≈ $${r.thawCost.toFixed(2)}. Type "yes" to pay and request the restores: `);
      if (answer.trim().toLowerCase() === 'yes') r = await verifyDeep(ctx, { dataset: flags.dataset, snapshot: flags.snapshot, confirm: true });
    }
    switch (r.outcome) {
      case 'verified':
        this.say(`OK: ${r.dataset}@${r.snapshot} restored from ${r.objects} object(s) (${formatBytes(r.bytes)})${r.comparedWithLocal ? `; ${r.filesCompared} entries identical to the local snapshot` : r.filesNotCompared ? '; raw encrypted stream: guid checked, files not compared (locked with the dataset key)' : '; local snapshot gone, guid checked'}`);
        break;
      case 'different':
        for (const d of r.differences) this.say(`DIFFERENT ${d.problem}: ${d.path}`);
        this.say(`FAILED: the restored ${r.dataset}@${r.snapshot} differs from the local snapshot`);
        process.exitCode = 6;
        break;
      case 'needs-confirmation':
        this.say(`${r.archivedObjects} object(s) are archived: thawing them costs ≈ $${r.thawCost.toFixed(2)}; rerun with --yes to pay and request the restores`);
        process.exitCode = 1;
        break;
      case 'thawing':
        this.say(`requested ${r.restoresRequested} restore(s) (≈ $${r.thawCost.toFixed(2)}); run "zbk verify --deep" again when they are done (up to 48 h for Bulk)`);
        process.exitCode = 1;
        break;
    }
    return r;
  }
}
