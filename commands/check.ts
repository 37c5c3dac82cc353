import { Args, Flags } from '@oclif/core';
import { BaseCommand } from '../src/cli/base-command.js';
import { ZbkError } from '../src/errors.js';
import { CHECK_EXIT, check, formatCheckLine, parseDuration, type CheckResult } from '../src/services/check.js';

export default class Check extends BaseCommand {
  static override summary = 'One-line backup health verdict for cron, Nagios/Icinga monitors and healthchecks (monitoring-plugins exit codes).';
  static override description = `Checks every configured dataset (or every dataset in the manifest when none is configured). Reads the local manifest, the push status in the state dir and the source's snapshot list: no passphrase, no network (unless --notify).

CRITICAL: the last push failed (also one that failed before uploading: passphrase, store, lock), the newest pushed snapshot is older than --max-age, a dataset was never pushed, or the manifest cannot resolve its restore chain.
WARNING: the newest pushed snapshot is older than --warn-age; the newest snapshot on the source is older than --max-snapshot-age (default: --max-age; "off" does not look), or there is none: the snapshot tool stopped.
UNKNOWN: the config, manifest or push status cannot be read (an unreadable manifest with a failed push recorded in the state dir is CRITICAL), bad flags, a dataset argument neither configured nor pushed, or zfs cannot list the source's snapshots (never hiding a CRITICAL or WARNING).

Prints one line on stdout: "ZBK OK - ... | age=3600s;;93600;0 ...", perfdata as label=value[UOM];warn;crit;min;max.

Exit codes (monitoring-plugins): 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.`;

  static override examples = [
    '<%= config.bin %> check',
    '<%= config.bin %> check --max-age 50h --warn-age 30h tank/photos',
    '<%= config.bin %> check --max-snapshot-age 2h   # hourly snapshots: warn when the snapshot tool stops',
    '<%= config.bin %> check --notify   # ping the configured healthchecks/Uptime Kuma/ntfy webhook',
  ];

  static override strict = false;
  static override args = { dataset: Args.string({ description: 'Dataset(s) to check (default: all configured).' }) };
  static override flags = {
    'max-age': Flags.string({ description: 'CRITICAL when the newest pushed snapshot is older (e.g. 26h, 2d, 90m).', default: '26h' }),
    'warn-age': Flags.string({ description: 'WARNING when the newest pushed snapshot is older (below --max-age).' }),
    'max-snapshot-age': Flags.string({ description: 'WARNING when the newest snapshot on the source is older (default: --max-age; "off" to skip zfs).' }),
    notify: Flags.boolean({ description: 'Also send the configured success (OK) / failure (anything else) webhook with the line.' }),
  };

  async run(): Promise<CheckResult> {
    const { argv, flags } = await this.parse(Check);
    const maxAgeSeconds = parseDuration(flags['max-age']);
    const warnAgeSeconds = flags['warn-age'] === undefined ? null : parseDuration(flags['warn-age']);
    const snap = flags['max-snapshot-age'];
    const maxSnapshotAgeSeconds = snap === undefined ? maxAgeSeconds : /^(off|none|no)$/i.test(snap.trim()) ? null : parseDuration(snap);
    const result = await check(this.context(flags), { maxAgeSeconds, warnAgeSeconds, maxSnapshotAgeSeconds, datasets: argv as string[], notify: flags.notify });
    this.say(result.line);
    // Exit without throwing, so --json still prints the full result.
    process.exitCode = result.code;
    return result;
  }

  /**
   * Whatever keeps the check from running (bad flags, no config, an
   * unreadable manifest) is UNKNOWN (3) with one "ZBK UNKNOWN - ..." line,
   * as the monitoring-plugins guidelines say: a monitor must not read a
   * usage error (exit 2) as CRITICAL. With --json the typed result carries
   * the error as well.
   */
  protected override async catch(err: Error & { exitCode?: number }): Promise<unknown> {
    const oclif = (err as { oclif?: { exit?: number } }).oclif;
    if (oclif?.exit === 0 || (err as { code?: string }).code === 'EEXIT') throw err;
    const code = err instanceof ZbkError ? err.code : oclif ? 'USAGE' : 'INTERNAL';
    const message = (err.message || String(err)).split('\n')[0]!;
    const line = formatCheckLine('UNKNOWN', message, []);
    if (this.jsonEnabled()) {
      const out = { status: 'UNKNOWN', code: CHECK_EXIT.UNKNOWN, ok: false, message, perfdata: [], line, error: { code, message, exitCode: CHECK_EXIT.UNKNOWN } };
      process.stdout.write(JSON.stringify(out, null, 2) + '\n');
    } else {
      process.stdout.write(`${line}\n`);
    }
    this.exit(CHECK_EXIT.UNKNOWN);
  }
}
