import { BaseCommand } from '../../src/cli/base-command.js';
import { leaseStatus, type LeaseStatus } from '../../src/services/lease/lease-info.js';

export default class Lease extends BaseCommand {
  static override summary = 'Show which machine may write the repository now (the writer lease).';
  static override description = `push and consolidate --apply take the writer lease in the store (zbk.lease, sealed) with conditional writes, renew it every 10 minutes while they work and release it when done; it expires 60 minutes after its last renewal. A push while another machine holds it fails with LEASE_HELD (exit 8). If that machine is gone for good, "zbk lease break" takes the lease over.

Exit codes: 0 ok, 3 config / no repository, 4 passphrase, 5 store.`;
  static override examples = ['<%= config.bin %> lease', '<%= config.bin %> lease --json'];

  async run(): Promise<LeaseStatus> {
    const { flags } = await this.parse(Lease);
    const r = await leaseStatus(this.context(flags));
    this.say(`writer lease: ${r.summary}`);
    return r;
  }
}
