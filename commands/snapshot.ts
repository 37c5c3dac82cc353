import { Args, Flags } from '@oclif/core';
import { BaseCommand } from '../src/cli/base-command.js';
import { snapshot, type SnapshotResult } from '../src/services/snapshot.js';

export default class Snapshot extends BaseCommand {
  static override summary = 'Take a read-only snapshot of each dataset, named by zbk, for machines without a snapshot tool.';
  static override description = `With no dataset arguments, snapshots every [[dataset]] in the config; a dataset named on the command line need not be configured. Run it just before "zbk push" (from the push timer: "zbk snapshot && zbk push", or ExecStartPre=, see docs/OPERATIONS.md), and push sends the new snapshot.

The name is zbk-YYYYMMDDTHHMMSSZ, the current time in UTC (e.g. zbk-20250102T023000Z), or --name NAME (ZFS: the snapshot-name characters letters, digits, "_", "-", ".", ":"; btrfs: one path component without white space, not starting with "-"). A name the dataset already has is refused (exit 2) and nothing is changed.

ZFS: "zfs snapshot pool/ds@NAME".
btrfs (a dataset named by an absolute path): a read-only snapshot at <mount point>/.zbk/<dataset UUID>/snapshots/NAME (.zbk a subvolume of mode 0700, the directory zbk also keeps its pins in, "snapshots" a directory of mode 0700). The dataset must be the real path of a subvolume: a symlink, a plain directory or a path not on btrfs is refused (exit 2). "zbk push" names it by its path relative to the mount, .zbk/<dataset UUID>/snapshots/NAME.

zbk never deletes these snapshots: prune old ones yourself ("zfs destroy pool/ds@zbk-…", "btrfs subvolume delete …"). The next incremental needs none of them: push keeps its own base, a pin on btrfs, a bookmark on OpenZFS; only with a hold (protect_base = "hold", or a ZFS without bookmarks) the last pushed snapshot cannot be destroyed until a later push moves the hold.

Prints one line per dataset, "snapshot <dataset>: <snapshot>"; --json prints {"snapshots": [{"dataset", "name", "ref"}], "failed": [...]} ("name" is what "zbk push --snapshot" takes). When one dataset fails, the others are still snapshotted and zbk exits with the failure's code (the first one's, when several fail); when none could be taken, the first error is reported as by any command ("zbk: …" on stderr, --json: {"error": …}).

Exit codes: 0 ok, 2 bad input (an invalid or taken name, a dataset that is not one), 3 config, 7 zfs or btrfs failed.`;

  static override examples = [
    '<%= config.bin %> snapshot',
    '<%= config.bin %> snapshot && <%= config.bin %> push   # from a timer',
    '<%= config.bin %> snapshot tank/photos /srv/music',
    '<%= config.bin %> snapshot tank/photos --name before-upgrade --json',
  ];

  static override strict = false;
  static override args = { dataset: Args.string({ description: 'Dataset(s) to snapshot: ZFS pool/ds, or the path of a btrfs subvolume (default: all configured).' }) };
  static override flags = {
    name: Flags.string({ description: 'Snapshot name instead of zbk-YYYYMMDDTHHMMSSZ (UTC); refused if the dataset already has it.' }),
  };

  async run(): Promise<SnapshotResult> {
    const { argv, flags } = await this.parse(Snapshot);
    const result = await snapshot(this.context(flags), { datasets: argv as string[], ...(flags.name === undefined ? {} : { name: flags.name }) });
    for (const s of result.snapshots) this.say(`snapshot ${s.dataset}: ${s.ref}`);
    for (const f of result.failed) this.note(`zbk: snapshot of ${f.dataset} failed: ${f.message}`);
    // Exit without throwing, so --json still prints the snapshots that were taken.
    if (result.failed.length > 0) process.exitCode = result.failed[0]!.exitCode;
    return result;
  }
}
