import { readFileSync } from 'node:fs';
import { Flags } from '@oclif/core';
import { BaseCommand } from '../../src/cli/base-command.js';
import { canPrompt, promptNewPassphrase } from '../../src/cli/prompt.js';
import { UsageError } from '../../src/errors.js';
import { keyImport, newPassphraseSource, type KeyWriteResult } from '../../src/services/key.js';

export default class KeyImport extends BaseCommand {
  static override summary = 'Recreate a lost or damaged key file from the paper key.';
  static override description = `Reads the paper key (from "zbk key export") from --file ("-" for stdin), wraps the master key under a new passphrase (--new-passphrase-file, else ZBK_PASSPHRASE_FILE, else a prompt) and writes the key file to the store. An existing key file of the same key is kept as zbk.key.prev, a damaged one (or one of another key id) as zbk.key.replaced-<time>; a paper key that opens none of the stored stream records and manifest mirrors is refused.

Exit codes: 0 ok, 2 bad input, 3 config / key of another repository, 4 paper key typo (the line is named), 5 store.`;
  static override examples = ['<%= config.bin %> key import --file paper-key.txt'];
  static override flags = {
    file: Flags.string({ description: 'File holding the paper key ("-" for stdin).', required: true }),
    'new-passphrase-file': Flags.string({ description: 'File whose first line is the new passphrase.' }),
    kdf: Flags.string({ description: 'Argon2id strength of the new slot.', options: ['moderate', 'interactive', 'min'], default: 'moderate' }),
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
    const result = await keyImport(this.context(flags), next, { paperKey, kdf: flags.kdf as 'moderate' | 'interactive' | 'min' });
    this.say(`key file restored (key ${result.keyId})${result.previousKeptAs ? `; the one it replaced is kept as ${result.previousKeptAs}` : ''}`);
    return result;
  }
}
