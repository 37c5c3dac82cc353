import { Args, Flags } from '@oclif/core';
import { formatBytes } from '../../src/cli/format.js';
import { BaseCommand } from '../../src/cli/base-command.js';
import { applyLimit, limitDownloadFlag, parseLimitFlag } from '../../src/cli/limit-flags.js';
import { progressIntervalFlag, progressReporter } from '../../src/cli/progress.js';
import { restoreRun, type RestoreRunResult } from '../../src/services/restore/index.js';

export default class RestoreRun extends BaseCommand {
  static override summary = 'Do the next step of the saved restore (run daily from a timer, or with --wait).';
  static override description = `A persisted state machine over the plan saved by "zbk restore plan" (planned with the config defaults if there is none): requests the restores of this month's volumes, checks running restores, downloads restored volumes (ranged, resumable, verified part by part) into the staging dir within this month's egress allowance, and as soon as every volume of the next stream in chain order is on disk pipes it, authenticated, into "zfs receive" (or "btrfs receive"), then deletes the staged files. Never downloads twice what is verified on disk, never requests a restore that is running or done, and requests again a copy that expired before its download. Safe to kill at any moment and run again.

The passphrase is checked before any request that costs money. The target must not exist (the first run fixes it) unless --force.

A btrfs backup (a dataset named by its path) is restored into a directory on a btrfs filesystem: a new one (its parent must exist), or an empty one; one holding anything else only with --force, which never deletes what is there. Each snapshot of the chain becomes a read-only subvolume in it, checked by its received UUID and named as the snapshot: the last part of its path when those of the chain are all different valid names; otherwise, for every one, the whole path with "/" as "_", leading "-" and "." dropped, white space as "_", cut to 200 characters, and "-" plus the first 8 hex digits of its UUID (snapper's .snapshots/12/snapshot as snapshots_12_snapshot-1a2b3c4d).

Bandwidth: --limit-download RATE (or [restore] limit in the config) caps the bytes received from the store, all parallel GETs together, with a token bucket; a schedule such as "08:00-23:00=2MiB/s, 23:00-08:00=off" (local time) changes it at each boundary, also mid-download. The flag overrides the config; "--limit-download off" disables a configured limit. A bad RATE is exit 2 (exit 3 in the config).

Progress goes to stderr: at a terminal a bar per volume downloaded. Outside a terminal (a systemd unit, cron, a pipe) or with --json, a line every --progress-interval seconds (default 60; 0: none), such as "progress tank/photos@snap volume 2: 1.2 GB of 4.29 GB (27%) after 1m 40s, 12.3 MB/s over the last 1m, 12 MB/s overall, ETA 4m 18s, part 37/128" (bytes verified on disk from an earlier run count as done, not in the rates), a line when each volume's download ends ("finished: …", or "stopped at …"), and "no bytes moved for …" while nothing is downloaded for an interval, e.g. while --wait waits for a thaw (then at doubling gaps up to 15 minutes). stdout, and --json on it, never gets them.

A volume whose object is missing or whose bytes from the store fail authentication becomes "damaged": recorded in the manifest, never requested or fetched again; the streams before it are still received when the restore had started, and the output (and "zbk restore status") names the snapshots still restorable and the remedy.

Exit codes: 0 ok (done or waiting), 2 bad input / target exists, 3 config, 4 wrong passphrase, 5 store, 6 integrity (a damaged or missing object blocks the restore; a damaged staged file is kept as *.bad and fetched again), 7 zfs or btrfs, 9 manifest, 130 interrupted.`;
  static override examples = [
    '<%= config.bin %> restore run tank/photos --target tank/photos-restored',
    '<%= config.bin %> restore run tank/photos --target tank/photos-restored --wait',
    '<%= config.bin %> restore run /srv/photos --target /mnt/newdisk/photos-restored --wait',
    '<%= config.bin %> restore run tank/photos --target tank/photos-restored --limit-download 5MiB/s',
    '<%= config.bin %> restore run tank/photos --target tank/photos-restored --wait --progress-interval 600',
  ];
  static override args = { dataset: Args.string({ description: 'Dataset whose saved restore to advance.', required: true }) };
  static override flags = {
    target: Flags.string({ description: 'ZFS dataset to receive into (must not exist unless --force); for a btrfs backup, a directory on btrfs (new or empty unless --force).', required: true }),
    force: Flags.boolean({ description: 'ZFS: overwrite an existing target dataset; later, roll back changes made to the target between runs (and snapshots taken there that the restore did not receive). btrfs: receive into a directory that holds other things (nothing there is deleted).' }),
    wait: Flags.boolean({ description: 'Keep going, polling running restores with backoff, until done or the plan needs a future month.' }),
    'poll-interval': Flags.integer({ description: 'First poll delay in seconds with --wait (doubles up to 15 minutes).', default: 5 }),
    'limit-download': limitDownloadFlag,
    'progress-interval': progressIntervalFlag,
  };

  async run(): Promise<RestoreRunResult> {
    const { args, flags } = await this.parse(RestoreRun);
    const limit = parseLimitFlag(flags['limit-download'], 'limit-download');
    const abort = new AbortController();
    const onSignal = (): void => abort.abort();
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    const progress = progressReporter({ json: this.jsonEnabled(), intervalSeconds: flags['progress-interval'], what: 'zbk restore run' });
    const label = (snapshot: string | undefined, volumeIndex: number | undefined): string =>
      `${args.dataset}${snapshot !== undefined ? `@${snapshot}` : ''}${volumeIndex !== undefined ? ` volume ${volumeIndex}` : ''}`;
    try {
      const r = await restoreRun(this.context(flags, (c) => applyLimit(c, 'download', limit)), {
        dataset: args.dataset,
        target: flags.target,
        force: flags.force,
        wait: flags.wait,
        signal: abort.signal,
        pollInitialMs: flags['poll-interval'] * 1000,
        onVolume: (e) => {
          if (e.event === 'start') progress.begin({ id: e.key, label: label(e.snapshot, e.volumeIndex), totalBytes: e.storedSize });
          else progress.end(e.key, e.storedSize);
        },
        onProgress: (p) =>
          progress.update({
            id: p.key,
            label: label(p.snapshot, p.volumeIndex),
            totalBytes: p.storedSize,
            doneBytes: p.downloadedBytes,
            movedBytes: p.downloadedBytes - (p.reusedBytes ?? 0),
            detail: p.partNumber !== undefined ? `part ${p.partNumber}/${p.partCount ?? '?'}` : '',
          }),
      });
      progress.close();
      const fmt = formatBytes;
      if (r.sharedEgress) this.say(`egress allowance ${r.sharedEgress.month}: ${fmt(r.sharedEgress.bytes)} already used by the restore(s) of ${r.sharedEgress.datasets.join(', ')} (the allowance is per account)`);
      if (r.requested.length) this.say(`requested restore of ${r.requested.length} volume(s)`);
      if (r.downloaded.length) this.say(`downloaded ${r.downloaded.length} volume(s), ${fmt(r.bytesDownloaded)}`);
      if (r.received.length) this.say(`received ${r.received.map((s) => `@${s}`).join(', ')} into ${r.target}`);
      for (const k of r.damaged) this.say(`DAMAGED ${k}: not fetched again`);
      if (r.next.kind === 'blocked') {
        this.say(`BLOCKED: ${r.next.what}`);
        process.exitCode = 6;
      } else this.say(r.done ? `done: ${r.target} holds @${r.snapshot}` : `next: ${r.next.what}${r.next.at ? ` (after ${r.next.at})` : ''}`);
      return r;
    } finally {
      progress.close();
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
  }
}
