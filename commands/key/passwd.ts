import { Flags } from '@oclif/core';
import { BaseCommand } from '../../src/cli/base-command.js';
import { canPrompt, promptNewPassphrase } from '../../src/cli/prompt.js';
import { keyPasswd, newPassphraseSource, type KeyWriteResult } from '../../src/services/key.js';

export default class KeyPasswd extends BaseCommand {
  static override summary = 'Change the passphrase that protects the master key.';
  static override description = `Rewraps the master key under a new passphrase; no data is re-encrypted. The current passphrase comes from ZBK_PASSPHRASE_FILE / passphrase_file or a prompt; the new one from --new-passphrase-file or a prompt (asked twice), and is refused when the zxcvbn-ts estimator scores it below 3 of 4 (--allow-weak-passphrase accepts it).

The new key file is written as zbk.key.next, read back and opened with the new passphrase, then replaces zbk.key; no copy under the old passphrase is kept (zbk.key.prev, left by older versions, is deleted, and so is any zbk.key.replaced-<time> of this key): afterwards the old passphrase opens nothing in the store. Other slots of the key file (added by "zbk key import") keep working. Then the manifest is mirrored.

The master key itself does not change: a copy of the old key file or a paper key made before still opens everything. Only a new repository and a full re-push rotates the master key.

Afterwards update ZBK_PASSPHRASE_FILE / passphrase_file to the new passphrase, or unattended pushes will fail with exit 4.

Exit codes: 0 ok, 2 bad input (weak new passphrase WEAK_PASSPHRASE, --kdf min outside tests WEAK_KDF, same passphrase), 3 config / no passphrase, 4 wrong current passphrase or bad key file, 5 store.`;
  static override examples = ['<%= config.bin %> key passwd', 'ZBK_PASSPHRASE_FILE=old.txt <%= config.bin %> key passwd --new-passphrase-file new.txt'];
  static override flags = {
    'new-passphrase-file': Flags.string({ description: 'File whose first line is the new passphrase (else a prompt).' }),
    kdf: Flags.string({ description: 'Argon2id strength of the new slot (min: tests only, refused unless ZBK_TEST_ALLOW_WEAK_KDF=1).', options: ['moderate', 'interactive', 'min'], default: 'moderate' }),
    'allow-weak-passphrase': Flags.boolean({ description: 'Accept a new passphrase the strength estimator scores below 3 of 4 (a warning instead of an error).' }),
  };

  async run(): Promise<KeyWriteResult> {
    const { flags } = await this.parse(KeyPasswd);
    const next = newPassphraseSource(flags['new-passphrase-file'], canPrompt() ? () => promptNewPassphrase() : undefined);
    const result = await keyPasswd(this.context(flags), {
      newPassphrase: next,
      kdf: flags.kdf as 'moderate' | 'interactive' | 'min',
      allowWeakPassphrase: flags['allow-weak-passphrase'],
    });
    this.say(`passphrase changed (key ${result.keyId}); the old passphrase opens no key file in the store${result.removed.length ? ` (deleted: ${result.removed.join(', ')})` : ''}`);
    this.say('now update ZBK_PASSPHRASE_FILE / passphrase_file to the new passphrase');
    return result;
  }
}
