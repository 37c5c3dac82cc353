/**
 * Terminal prompts for secrets. Input is not echoed. Without a TTY (cron,
 * CI, systemd) there is no prompt: callers must use ZBK_PASSPHRASE_FILE.
 */
import { ConfigError } from '../errors.js';

export function canPrompt(): boolean {
  return Boolean(process.stdin.isTTY && process.stderr.isTTY);
}

/** Read one line from the terminal without echo. */
export async function promptHidden(question: string): Promise<string> {
  if (!canPrompt()) {
    throw new ConfigError('a passphrase is needed but there is no terminal to ask on: set ZBK_PASSPHRASE_FILE or passphrase_file in the config', 'NO_PASSPHRASE');
  }
  const stdin = process.stdin;
  process.stderr.write(question);
  stdin.setRawMode(true);
  stdin.resume();
  stdin.setEncoding('utf8');
  return new Promise<string>((resolve, reject) => {
    let value = '';
    const onData = (chunk: string): void => {
      for (const ch of chunk) {
        if (ch === '\r' || ch === '\n') {
          done();
          resolve(value);
          return;
        }
        if (ch === '\u0003') {
          done();
          reject(new ConfigError('interrupted', 'INTERRUPTED'));
          return;
        }
        if (ch === '\u007f' || ch === '\b') value = value.slice(0, -1);
        else value += ch;
      }
    };
    const done = (): void => {
      stdin.off('data', onData);
      stdin.setRawMode(false);
      stdin.pause();
      process.stderr.write('\n');
    };
    stdin.on('data', onData);
  });
}

/** Ask twice and insist on a match (for new passphrases). */
export async function promptNewPassphrase(what = 'new passphrase'): Promise<string> {
  for (let attempt = 0; attempt < 3; attempt++) {
    const a = await promptHidden(`Enter ${what}: `);
    if (a.length < 8) {
      process.stderr.write('zbk: use at least 8 characters\n');
      continue;
    }
    const b = await promptHidden(`Repeat ${what}: `);
    if (a === b) return a;
    process.stderr.write('zbk: the two entries differ, try again\n');
  }
  throw new ConfigError('no matching passphrase entered', 'NO_PASSPHRASE');
}
