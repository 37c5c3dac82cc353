import { Flags } from '@oclif/core';
import { BaseCommand } from '../src/cli/base-command.js';
import { createContext } from '../src/services/context.js';
import type { ZbkConfig } from '../src/config/config.js';
import { ConfigError, ExitCode } from '../src/errors.js';
import { configFailure, doctor, type DoctorResult } from '../src/services/doctor.js';
import { openStore } from '../src/store/open-store.js';

/** Doctor reports rather than waits: a dead endpoint must not take minutes of retries. */
const DOCTOR_RETRY = { retries: 1, minTimeoutMs: 200, maxTimeoutMs: 1000 };

export default class Doctor extends BaseCommand {
  static override summary = 'Check everything an unattended backup needs; each problem with a one-line fix.';
  static override description = `Checks: config file permissions (0600), passphrase source, zfs and its capabilities, configured datasets, store reachable, key file opens with the passphrase, S3 credentials (STS identity), bucket region, lifecycle rule for incomplete uploads, clock skew against the endpoint's Date header, local manifest integrity, mirror freshness, orphan multipart uploads.

--fix aborts orphan uploads (under the manifest lock) and adds a lifecycle rule aborting incomplete uploads after 7 days. Nothing else is ever changed.

A config that does not load (missing, TOML syntax error, unknown or misspelt key, wrong type) is reported as the failing "config file" check, with the file, line and fix; nothing else is checked then.

Exit codes: 0 no check failed (warnings allowed), 1 at least one check failed, 3 config missing or invalid.`;
  static override examples = ['<%= config.bin %> doctor', '<%= config.bin %> doctor --fix', '<%= config.bin %> doctor --json'];
  static override flags = {
    fix: Flags.boolean({ description: 'Abort orphan uploads and add the missing lifecycle rule.' }),
  };

  async run(): Promise<DoctorResult> {
    const { flags } = await this.parse(Doctor);
    let config: ZbkConfig;
    try {
      config = this.loadConfig(flags);
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      const result = configFailure(this.configPath(flags), err);
      this.report(result);
      process.exitCode = ExitCode.CONFIG;
      return result;
    }
    const ctx = createContext(config, this.passphrase(config), { log: this.logger(), store: openStore(config.store, { retry: DOCTOR_RETRY }) });
    const result = await doctor(ctx, { fix: flags.fix });
    this.report(result);
    if (!result.ok) process.exitCode = 1;
    return result;
  }

  private report(result: DoctorResult): void {
    const mark = { ok: 'ok  ', warn: 'WARN', fail: 'FAIL', skip: 'skip' } as const;
    for (const c of result.checks) {
      this.say(`${mark[c.status]}  ${c.name}: ${c.detail}${c.fixed ? ` — fixed: ${c.fixed}` : ''}`);
      if (c.fix) this.say(`      fix: ${c.fix}`);
    }
    this.say(`\n${result.counts.ok} ok, ${result.counts.warn} warning(s), ${result.counts.fail} failed`);
  }
}
