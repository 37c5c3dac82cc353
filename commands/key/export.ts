import { BaseCommand } from '../../src/cli/base-command.js';
import { keyExport, type KeyExportResult } from '../../src/services/key.js';

/**
 * Printed under the paper key, on the same sheet. Paper-key readers ignore
 * lines that do not start with a line label (docs/FORMAT.md "Paper key"), so
 * `zbk key import` and recovery/zbk-recover.py read the sheet as printed.
 */
const RECOVERY_NOTE = [
  '',
  'Recovery steps, with zbk and without it: docs/RECOVERY.md (print it, keep it with this sheet).',
  '  zbk key import --file <this sheet>    a new key file and passphrase (needs a config naming the store)',
  '  recovery/zbk-recover.py <dir> list --paper-key <this sheet>    reads a copy of the bucket without zbk',
].join('\n');

export default class KeyExport extends BaseCommand {
  static override summary = 'Print a paper backup of the master key (a secret!).';
  static override description = `Prints the master key as four typo-checked lines plus a checksum, and where the recovery steps are (docs/RECOVERY.md). With it (and "zbk key import", or recovery/zbk-recover.py without zbk) the repository can be opened even if the key file or the passphrase is lost. Anyone holding it can read every backup: print it, store it like a passport, never put it in the bucket or a cloud note.

Exit codes: 0 ok, 3 config / no passphrase, 4 wrong passphrase or bad key file, 5 store.`;
  static override examples = ['<%= config.bin %> key export > /dev/tty', '<%= config.bin %> key export | lp'];

  async run(): Promise<KeyExportResult> {
    const { flags } = await this.parse(KeyExport);
    const result = await keyExport(this.context(flags));
    // Always on stderr, even with --json: the caller must know stdout now carries a secret.
    process.stderr.write('zbk: WARNING: the following paper key is a secret: anyone holding it can decrypt every backup. Print it; do not store it next to the bucket.\n');
    this.say(`${result.paperKey.trimEnd()}\n${RECOVERY_NOTE}`);
    return result;
  }
}
