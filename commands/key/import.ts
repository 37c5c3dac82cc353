import { readFileSync } from 'node:fs';
import { Flags } from '@oclif/core';
import { BaseCommand } from '../../src/cli/base-command.js';
import { canPrompt, promptNewPassphrase } from '../../src/cli/prompt.js';
import { UsageError } from '../../src/errors.js';
import { keyImport, newPassphraseSource, type KeyWriteResult } from '../../src/services/key.js';

export default class KeyImport extends BaseCommand {
  static override summary = 'Add a passphrase from the paper key, or recreate a lost or damaged key file.';
  static override description = `Reads the paper key (from "zbk key export") from --file ("-" for stdin) and wraps the master key under a new passphrase (--new-passphrase-file, else ZBK_PASSPHRASE_FILE, else a prompt; refused when the zxcvbn-ts estimator scores it below 3 of 4, unless --allow-weak-passphrase).

If the store's key file is of this key and intact, a slot for the new passphrase is added to it: the passphrases of other machines keep working. It is never replaced without --force (with all 16 slots taken, import stops with KEY_FILE_WORKS); --force replaces it with a one-slot file and keeps the old one as zbk.key.replaced-<time>. A missing key file is recreated; a damaged one (or one of another key id) is replaced and kept as zbk.key.replaced-<time>. A paper key that opens none of the stored stream records and manifest mirrors is refused.

Exit codes: 0 ok, 2 bad input (KEY_FILE_WORKS, WEAK_PASSPHRASE, WEAK_KDF), 3 config / key of another repository, 4 paper key typo (the line is named), 5 store.`;
  static override examples = ['<%= config.bin %> key import --file paper-key.txt', '<%= config.bin %> key import --file paper-key.txt --force'];
  static override flags = {
    file: Flags.string({ description: 'File holding the paper key ("-" for stdin).', required: true }),
    'new-passphrase-file': Flags.string({ description: 'File whose first line is the new passphrase.' }),
    kdf: Flags.string({ description: 'Argon2id strength of the new slot (min: tests only, refused unless ZBK_TEST_ALLOW_WEAK_KDF=1).', options: ['moderate', 'interactive', 'min'], default: 'moderate' }),
    force: Flags.boolean({ description: 'Replace an intact key file of this key instead of adding a slot (other machines\' passphrases stop working; the old file is kept aside).' }),
    'allow-weak-passphrase': Flags.boolean({ description: 'Accept a new passphrase the strength estimator scores below 3 of 4 (a warning instead of an error).' }),
  };

  async run(): Promise<KeyWriteResult> {
    const { flags } = await this.parse(KeyImport);
    let paperKey: string;
    try {
      paperKey = readFileSync(flags.file === '-' ? 0 : flags.file, 'utf8');
    } catch (err) {
      throw new UsageError(`cannot read ${flags.file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
    }
    const file = flags['new-passphrase-file'] ?? process.env.ZBK_PASSPHRASE_FILE;
    const next = newPassphraseSource(file || undefined, canPrompt() ? () => promptNewPassphrase() : undefined);
    const result = await keyImport(this.context(flags), next, {
      paperKey,
      kdf: flags.kdf as 'moderate' | 'interactive' | 'min',
      force: flags.force,
      allowWeakPassphrase: flags['allow-weak-passphrase'],
    });
    if (result.slotAdded) this.say(`added key slot ${result.slotAdded} for the new passphrase to the key file (key ${result.keyId}); its other passphrases still work`);
    else this.say(`key file restored (key ${result.keyId})${result.previousKeptAs ? `; the one it replaced is kept as ${result.previousKeptAs}` : ''}`);
    return result;
  }
}
