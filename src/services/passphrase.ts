/**
 * Where the passphrase comes from: ZBK_PASSPHRASE_FILE, then the config's
 * passphrase_file, then an interactive prompt supplied by the command layer.
 * The passphrase is never logged or put in an error message.
 */
import { readFileSync, statSync } from 'node:fs';
import { ConfigError, UsageError } from '../errors.js';

export type PassphrasePrompt = (purpose: 'open' | 'new') => Promise<string>;

export interface PassphraseSource {
  /** Describes the source without revealing it (for doctor). */
  describe(): string;
  get(purpose: 'open' | 'new'): Promise<string>;
}

/** Shortest passphrase zbk accepts for a new key slot (the prompt asks again; a file is refused). */
export const MIN_PASSPHRASE_LENGTH = 8;

/** A new passphrase (from a prompt or a file), checked: too short is WEAK_PASSPHRASE. */
export async function newPassphrase(source: PassphraseSource): Promise<string> {
  const pass = await source.get('new');
  if (pass.length < MIN_PASSPHRASE_LENGTH) throw new UsageError(`the new passphrase must have at least ${MIN_PASSPHRASE_LENGTH} characters`, 'WEAK_PASSPHRASE');
  return pass;
}

/** Read a passphrase file: the first line, without its line ending. */
export function readPassphraseFile(path: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    throw new ConfigError(`cannot read the passphrase file ${path} (${code})`, 'PASSPHRASE_FILE');
  }
  // A byte-order mark some editors write is not part of the passphrase (typed at a prompt it never is).
  const line = text.replace(/^\uFEFF/, '').split(/\r?\n/)[0] ?? '';
  if (line.length === 0) throw new ConfigError(`the passphrase file ${path} is empty`, 'PASSPHRASE_FILE');
  return line;
}

export function passphraseFilePath(configFile?: string): string | undefined {
  return process.env.ZBK_PASSPHRASE_FILE || configFile || undefined;
}

/** True when a passphrase file is readable by group or others. */
export function passphraseFileTooOpen(path: string): boolean {
  return (statSync(path).mode & 0o077) !== 0;
}

export function passphraseSource(configFile: string | undefined, prompt?: PassphrasePrompt): PassphraseSource {
  const file = passphraseFilePath(configFile);
  return {
    describe: () => (file ? `file ${file}` : prompt ? 'terminal prompt' : 'none'),
    get: async (purpose) => {
      if (file) return readPassphraseFile(file);
      if (prompt) return prompt(purpose);
      throw new ConfigError('no passphrase source: set ZBK_PASSPHRASE_FILE or passphrase_file in the config, or run in a terminal', 'NO_PASSPHRASE');
    },
  };
}
