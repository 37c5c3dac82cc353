/**
 * Where the passphrase comes from: ZBK_PASSPHRASE_FILE, then the config's
 * passphrase_file, then an interactive prompt supplied by the command layer.
 * The passphrase is never logged or put in an error message.
 */
import { readFileSync, statSync } from 'node:fs';
import { isAbsolute } from 'node:path';
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

/**
 * Read a passphrase file: the first line, without its line ending.
 * `label` names the file in error messages (default: "the passphrase file
 * <path>"); see `passphraseFileRef`, which never echoes a value that may be
 * a passphrase typed where its path belongs.
 */
export function readPassphraseFile(path: string, label = `the passphrase file ${path}`): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    throw new ConfigError(`cannot read ${label} (${code})`, 'PASSPHRASE_FILE');
  }
  // A byte-order mark some editors write is not part of the passphrase (typed at a prompt it never is).
  const line = text.replace(/^\uFEFF/, '').split(/\r?\n/)[0] ?? '';
  if (line.length === 0) throw new ConfigError(`${label} is empty`, 'PASSPHRASE_FILE');
  return line;
}

export function passphraseFilePath(configFile?: string): string | undefined {
  return process.env.ZBK_PASSPHRASE_FILE || configFile || undefined;
}

/** The passphrase file in force and how to name it in messages. */
export interface PassphraseFileRef {
  path: string;
  /** "the passphrase file named by ZBK_PASSPHRASE_FILE (/abs/path)" or "... by passphrase_file in <config>". */
  label: string;
}

/**
 * The passphrase file in force (ZBK_PASSPHRASE_FILE, then the config's
 * passphrase_file) with a label for messages that names where it was set
 * and shows the value only when it looks like an absolute path: a
 * passphrase typed into `passphrase_file` by mistake must not reach
 * stderr, the push status file or the hooks.
 */
export function passphraseFileRef(configFile?: string, configPath?: string): PassphraseFileRef | undefined {
  const env = process.env.ZBK_PASSPHRASE_FILE;
  const path = env || configFile;
  if (!path) return undefined;
  const where = env ? 'ZBK_PASSPHRASE_FILE' : `passphrase_file in ${configPath ?? 'the config'}`;
  const shown = isAbsolute(path) && !/\s/.test(path) ? ` (${path})` : '';
  return { path, label: `the passphrase file named by ${where}${shown}` };
}

/** True when a passphrase file is readable by group or others. */
export function passphraseFileTooOpen(path: string): boolean {
  return (statSync(path).mode & 0o077) !== 0;
}

/** `configPath`: the config file `configFile` (its passphrase_file) was read from, named in messages. */
export function passphraseSource(configFile: string | undefined, prompt?: PassphrasePrompt, configPath?: string): PassphraseSource {
  const file = passphraseFileRef(configFile, configPath);
  return {
    describe: () => (file ? file.label.replace(/^the passphrase /, '') : prompt ? 'terminal prompt' : 'none'),
    get: async (purpose) => {
      if (file) return readPassphraseFile(file.path, file.label);
      if (prompt) return prompt(purpose);
      throw new ConfigError('no passphrase source: set ZBK_PASSPHRASE_FILE or passphrase_file in the config, or run in a terminal', 'NO_PASSPHRASE');
    },
  };
}
