import { Flags } from '@oclif/core';
import { BaseCommand } from '../src/cli/base-command.js';
import { verify, type VerifyResult } from '../src/services/verify.js';

export default class Verify extends BaseCommand {
  static override summary = 'Check that every object the manifest needs is in the store, intact.';
  static override description = `For every complete stream: each volume exists with the recorded size and storage class, its sealed metadata decrypts and names the right stream, volume and snapshot; the stream record opens. Uses LIST/HEAD and small GETs only: no archived data is restored, cost is a few requests per object.

Exit codes: 0 everything verified, 3 config, 4 passphrase, 5 store, 6 a missing or damaged object, 9 manifest.`;
  static override examples = ['<%= config.bin %> verify', '<%= config.bin %> verify --dataset tank/photos --json'];
  static override flags = {
    dataset: Flags.string({ description: 'Only this dataset.' }),
  };

  async run(): Promise<VerifyResult> {
    const { flags } = await this.parse(Verify);
    const r = await verify(this.context(flags), { dataset: flags.dataset });
    this.say(`${r.objectsChecked} object(s) of ${r.streams} stream(s) checked in ${r.store}`);
    for (const p of r.problems) this.say(`PROBLEM ${p.key}${p.dataset ? ` (${p.dataset})` : ''}: ${p.problem}`);
    if (r.unreferenced.length) this.note(`${r.unreferenced.length} object(s) under data/ not in the manifest (abandoned uploads?): ${r.unreferenced.slice(0, 5).join(', ')}`);
    this.say(r.ok ? 'OK: all objects present and intact' : `FAILED: ${r.problems.length} problem(s); run "zbk push" to re-upload a dataset whose chain is damaged`);
    if (!r.ok) process.exitCode = 6;
    return r;
  }
}
