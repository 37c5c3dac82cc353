import { Flags } from '@oclif/core';
import { BaseCommand } from '../../src/cli/base-command.js';
import { canPrompt, promptNewPassphrase } from '../../src/cli/prompt.js';
import { keyPasswd, newPassphraseSource, type KeyWriteResult } from '../../src/services/key.js';

export default class KeyPasswd extends BaseCommand {
  static override summary = 'Change the passphrase that protects the master key.';
  static override description = `Rewraps the master key under a new passphrase; no data is re-encrypted. The current passphrase comes from ZBK_PASSPHRASE_FILE / passphrase_file or a prompt; the new one from --new-passphrase-file or a prompt (asked twice). The previous key file is kept in the store as zbk.key.prev before the new one is written; then the manifest is mirrored.

Afterwards update ZBK_PASSPHRASE_FILE / passphrase_file to the new passphrase, or unattended pushes will fail with exit 4.

Exit codes: 0 ok, 2 bad input, 3 config / no passphrase, 4 wrong current passphrase or bad key file, 5 store.`;
  static override examples = ['<%= config.bin %> key passwd', 'ZBK_PASSPHRASE_FILE=old.txt <%= config.bin %> key passwd --new-passphrase-file new.txt'];
  static override flags = {
    'new-passphrase-file': Flags.string({ description: 'File whose first line is the new passphrase (else a prompt).' }),
    kdf: Flags.string({ description: 'Argon2id strength of the new slot.', options: ['moderate', 'interactive', 'min'], default: 'moderate' }),
  };

  async run(): Promise<KeyWriteResult> {
    const { flags } = await this.parse(KeyPasswd);
    const next = newPassphraseSource(flags['new-passphrase-file'], canPrompt() ? () => promptNewPassphrase() : undefined);
    const result = await keyPasswd(this.context(flags), { newPassphrase: next, kdf: flags.kdf as 'moderate' | 'interactive' | 'min' });
    this.say(`passphrase changed (key ${result.keyId}); previous key file kept as ${result.previousKeptAs ?? '-'}`);
    this.say('now update ZBK_PASSPHRASE_FILE / passphrase_file to the new passphrase');
    return result;
  }
}
