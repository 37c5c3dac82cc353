import { Args, Flags } from '@oclif/core';
import { BaseCommand } from '../src/cli/base-command.js';
import { check, parseDuration, type CheckResult } from '../src/services/check.js';

export default class Check extends BaseCommand {
  static override summary = 'One-line backup health verdict for cron, Nagios-style monitors and healthchecks.';
  static override description = `Fails when the newest pushed snapshot of any configured dataset (or any dataset in the manifest when none is configured) is older than --max-age, was never pushed, or when its last push failed. Reads only the local manifest: no passphrase, no network (unless --notify).

Prints "OK: ..." or "CRITICAL: <reason>" on stdout.

Exit codes: 0 ok, 1 stale or failed backup, 2 bad flags, 3 config, 9 manifest.`;

  static override examples = [
    '<%= config.bin %> check',
    '<%= config.bin %> check --max-age 50h tank/photos',
    '<%= config.bin %> check --notify   # ping the configured healthchecks/Uptime Kuma/ntfy webhook',
  ];

  static override strict = false;
  static override args = { dataset: Args.string({ description: 'Dataset(s) to check (default: all configured).' }) };
  static override flags = {
    'max-age': Flags.string({ description: 'Maximum age of the newest pushed snapshot (e.g. 26h, 2d, 90m).', default: '26h' }),
    notify: Flags.boolean({ description: 'Also send the configured success/failure webhook with the result.' }),
  };

  async run(): Promise<CheckResult> {
    const { argv, flags } = await this.parse(Check);
    const maxAgeSeconds = parseDuration(flags['max-age']);
    const result = await check(this.context(flags), { maxAgeSeconds, datasets: argv as string[], notify: flags.notify });
    this.say(result.line);
    // Non-zero exit without throwing, so --json still prints the full result.
    if (!result.ok) process.exitCode = 1;
    return result;
  }
}
