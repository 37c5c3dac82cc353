import { Flags } from '@oclif/core';
import { UsageError } from '../../src/errors.js';
import { BaseCommand } from '../../src/cli/base-command.js';
import { breakLease, leaseStatus } from '../../src/services/lease/lease-info.js';
import type { LeaseRecord } from '../../src/services/lease/writer-lease.js';

export default class LeaseBreak extends BaseCommand {
  static override summary = 'Take the writer lease from a machine that is gone for good.';
  static override description = `Only when the machine named by "zbk lease" will not write again (it died, was replaced, or its zbk is stopped): a zbk still running there stops at its next write once its lease is gone, but whatever it was in the middle of stays unfinished (the next push resumes or abandons it). Without --yes, shows the holder and changes nothing.

Exit codes: 0 ok (or nothing to break), 2 without --yes while held, 3 config, 4 passphrase, 5 store.`;
  static override examples = ['<%= config.bin %> lease break --yes'];
  static override flags = {
    yes: Flags.boolean({ description: 'Really take the lease over.' }),
  };

  async run(): Promise<{ broken: LeaseRecord | null }> {
    const { flags } = await this.parse(LeaseBreak);
    const ctx = this.context(flags);
    if (!flags.yes) {
      const s = await leaseStatus(ctx);
      if (s.state !== 'held') {
        this.say(`nothing to break: ${s.summary}`);
        return { broken: null };
      }
      throw new UsageError(`the writer lease is ${s.summary}; make sure that machine will not write again, then run "zbk lease break --yes"`, 'CONFIRM_REQUIRED');
    }
    const broken = await breakLease(ctx);
    this.say(broken ? `broke the writer lease of ${broken.host} (${broken.command}, pid ${broken.pid}); the lease is free` : 'the writer lease is free');
    return { broken };
  }
}
