import { Args, Flags } from '@oclif/core';
import { formatBytes, formatUSD } from '../src/cli/format.js';
import { BaseCommand } from '../src/cli/base-command.js';
import { progressIntervalFlag, progressReporter } from '../src/cli/progress.js';
import { applyLimit, limitUploadFlag, parseLimitFlag } from '../src/cli/limit-flags.js';
import { UsageError } from '../src/errors.js';
import { createContext, type ServiceContext } from '../src/services/context.js';
import { push, type DatasetPushResult, type PushResult } from '../src/services/push.js';
import { reportEarlyPushFailure } from '../src/services/push/failure.js';

/** The size of an estimate: the tool's (zfs send -nP), else (a full stream) the snapshot's size (ZFS referenced; btrfs its files). */
function sizeText(r: DatasetPushResult): string {
  if (r.estimatedBytes !== null) return `about ${formatBytes(r.estimatedBytes)}`;
  if (r.costBytes > 0) return `about ${formatBytes(r.costBytes)} (the snapshot's size: no send estimate here)`;
  return 'size unknown (no send estimate here)';
}

/** The cost line of an estimate. */
function costText(r: DatasetPushResult): string {
  const staging = r.estimatedStagingCostPerDay > 0 ? `; parts in flight (Standard rate) ≈ ${formatUSD(r.estimatedStagingCostPerDay)}/day of upload` : '';
  return `upload ≈ $${r.estimatedUploadCost.toFixed(4)}, storage ≈ $${r.estimatedMonthlyCost.toFixed(4)}/month${staging}`;
}

export default class Push extends BaseCommand {
  static override summary = 'Upload the delta since the last pushed snapshot of each dataset.';
  static override description = `For each dataset, sends the newest snapshot (or --snapshot, or the newest matching the configured snapshot_pattern) incrementally from the last pushed snapshot that still exists locally, else a full stream (and says why). The stream is sealed part by part and uploaded as resumable multipart uploads; each acknowledged part is checkpointed, so a push killed at any moment resumes on the next run. Multipart uploads unknown to the manifest (orphans) are aborted.

With no dataset arguments, pushes every [[dataset]] in the config: a ZFS dataset (pool/ds), or a btrfs subvolume named by its absolute path (zbk's read-only pin of the snapshot is what is sent; see docs/OPERATIONS.md, "btrfs"). When one dataset's push fails (its disk not mounted, a snapshot it cannot send), the others are still pushed, and zbk exits with the first failure's code (--json: "failed": [...]); a failure of the store, key, lock or manifest stops the run.

Bandwidth: --limit-upload RATE (or [upload] limit in the config) caps the bytes sent to the store, all parallel parts together, with a token bucket (bursts of at most a quarter second of the rate or 64 KiB); a schedule such as "08:00-23:00=2MiB/s, 23:00-08:00=off" (local time, covering the whole day) changes the limit at each boundary, also in the middle of a push. The flag overrides the config; "--limit-upload off" disables a configured limit. A bad RATE is exit 2 (exit 3 in the config).

Progress goes to stderr: at a terminal a bar (sizes, rate, ETA, volume/part). Outside a terminal (a systemd unit, cron, a pipe) or with --json, a line every --progress-interval seconds (default 60; 0: none), such as "progress tank/photos@snap: 1.2 GB of about 4.5 GB (26%) after 1m 40s, 12.3 MB/s over the last 1m, 12 MB/s overall, ETA 4m 35s, volume 0 part 37" (the total is zfs send's estimate), a line when each stream ends ("finished: 4.5 GB in 6m 20s, …", or "stopped at …" when it failed), and "nothing reported for …" when no part finished for an interval (then at doubling gaps up to 15 minutes). stdout, and --json on it, never gets them.

--full starts a new chain now: a full stream of the snapshot, even when an incremental base exists. It is the way out of a broken chain (a volume "zbk verify" or a restore found missing or damaged: "zbk status" says which snapshots are still restorable), since a plain push only adds incrementals to it. Its estimated size and cost are printed before the upload starts; "--full --dry-run" shows them without uploading. The old chain stays until consolidation or retention removes it (objects younger than 180 days are billed for 180 days anyway).

Every failed push (also one that fails before uploading: wrong or missing passphrase, store unreachable, lock held with --no-wait) runs post_push with ZBK_RESULT=failure, sends the on_failure webhook and is recorded in the state dir, so "zbk check" is CRITICAL until a push of the dataset succeeds. Command-line mistakes (exit 2, e.g. a --snapshot that does not exist, or a dataset argument that is neither configured nor exists) are neither recorded nor alerted; a configured btrfs dataset that is no longer a subvolume on btrfs (its disk not mounted) is a failed backup. --dry-run records and sends nothing.

Exit codes: 0 ok, 1 failed, 2 bad input, 3 config, 4 passphrase, 5 store, 6 integrity, 7 zfs or btrfs, 8 locked or another writer holds the writer lease (--no-wait; LEASE_HELD), or the lease was lost (LEASE_LOST), 9 manifest (MANIFEST_STALE: another machine pushed since, run "zbk manifest rebuild --force").`;

  static override examples = [
    '<%= config.bin %> push tank/photos',
    '<%= config.bin %> push tank/photos --dry-run',
    '<%= config.bin %> push --full --dry-run tank/photos',
    '<%= config.bin %> push --json',
    '<%= config.bin %> push tank/photos --limit-upload 2MiB/s',
    '<%= config.bin %> push --limit-upload "08:00-23:00=1MiB/s, 23:00-08:00=off"',
    '<%= config.bin %> push --progress-interval 300',
  ];

  static override strict = false;
  static override args = { dataset: Args.string({ description: 'Dataset(s) to push (default: all configured).' }) };
  static override flags = {
    snapshot: Flags.string({ description: 'Short name of the snapshot to push instead of the newest.' }),
    'dry-run': Flags.boolean({ description: 'Say what would be sent and what it would cost; upload nothing.' }),
    full: Flags.boolean({ description: 'Start a new chain: send a full stream even when an incremental base exists (the way out of a broken chain); its cost is shown first.' }),
    'no-wait': Flags.boolean({ description: 'Fail at once (exit 8) if another zbk holds the manifest lock.' }),
    'limit-upload': limitUploadFlag,
    'progress-interval': progressIntervalFlag,
  };

  async run(): Promise<PushResult> {
    const { argv, flags } = await this.parse(Push);
    const limit = parseLimitFlag(flags['limit-upload'], 'limit-upload');
    // A config that cannot be read has no hooks and no state dir: that failure is only the exit code.
    const config = applyLimit(this.loadConfig(flags), 'upload', limit);
    const datasets = (argv as string[]).length > 0 ? (argv as string[]) : config.datasets.map((d) => d.name);
    if (datasets.length === 0) throw new UsageError('no dataset given and none configured: zbk push <dataset>');
    if (flags.snapshot && datasets.length > 1) throw new UsageError('--snapshot applies to one dataset at a time');
    let ctx: ServiceContext;
    try {
      ctx = createContext(config, this.passphrase(config), { log: this.logger() });
    } catch (err) {
      // After the config was read (e.g. a bad store setting or ZBK_NOW): a failed push like any other.
      if (!flags['dry-run']) await reportEarlyPushFailure(config, datasets, err, this.logger(), new Date());
      throw err;
    }
    const progress = progressReporter({ json: this.jsonEnabled(), intervalSeconds: flags['progress-interval'], what: 'zbk push' });
    const streamId = (dataset: string, snapshot: string): string => JSON.stringify([dataset, snapshot]);
    const abort = new AbortController();
    const onSignal = (): void => abort.abort();
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    try {
      const result = await push(ctx, {
        datasets,
        snapshot: flags.snapshot,
        dryRun: flags['dry-run'],
        full: flags.full,
        onFullEstimate: (e) => {
          progress.pause();
          this.say(`${e.dataset}: sending a new full chain @${e.snapshot}, ${sizeText(e)}; ${costText(e)}`);
        },
        wait: !flags['no-wait'],
        signal: abort.signal,
        onStream: (e) => {
          const id = streamId(e.dataset, e.snapshot);
          if (e.event === 'start') progress.begin({ id, label: `${e.dataset}@${e.snapshot}`, totalBytes: e.estimatedBytes, estimate: true });
          else progress.end(id, e.plaintextBytes);
        },
        onProgress: (p) =>
          progress.update({
            id: streamId(p.dataset, p.snapshot),
            label: `${p.dataset}@${p.snapshot}`,
            totalBytes: p.estimatedBytes,
            estimate: true,
            doneBytes: p.plaintextBytes,
            detail: `volume ${p.volumeIndex} part ${p.partNumber}`,
          }),
      });
      progress.close();
      for (const r of result.results) {
        const raw = r.sendFlags?.includes('-w') ? ' raw (still encrypted with its own key)' : '';
        const size = formatBytes(r.dryRun ? (r.estimatedBytes ?? 0) : r.plaintextBytes);
        if (r.kind === 'none') this.say(`${r.dataset}: ${r.resumed ? `finished the interrupted upload (${r.partsSkipped} parts verified and skipped); then ` : ''}nothing to push (${r.reason})`);
        else if (r.dryRun) {
          this.say(
            `${r.dataset}: would send ${r.kind}${raw} @${r.snapshot}${r.base ? ` from @${r.base}` : ''}${r.reason ? ` (${r.reason})` : ''}, ` +
              `${sizeText(r)}; ${costText(r)}`,
          );
        } else {
          this.say(
            `${r.dataset}: pushed ${r.kind}${raw} @${r.snapshot}${r.base ? ` from @${r.base}` : ''}: ${size} in ${r.objects} object(s), ` +
              `${r.durationSeconds.toFixed(1)}s${r.resumed ? `, resumed (${r.partsSkipped} parts verified and skipped)` : ''}; ` +
              `+$${r.estimatedMonthlyCost.toFixed(4)}/month`,
          );
        }
      }
      if (result.orphanUploadsAborted > 0) this.say(`aborted ${result.orphanUploadsAborted} orphan upload(s)`);
      for (const f of result.failed) this.note(`zbk: push of ${f.dataset} failed: ${f.message}`);
      // The others were pushed: exit without throwing, so --json still reports them; the first failure's code.
      if (result.failed.length > 0) process.exitCode = result.failed[0]!.exitCode;
      return result;
    } finally {
      progress.close();
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
  }
}
