/**
 * Base class of every zbk command: the shared flags (`--json`, `--config`),
 * config loading, and the mapping of typed errors to documented exit codes.
 *
 * A command's `run()` parses, calls one service and returns a typed result.
 * With `--json` oclif prints that result as JSON on stdout (and nothing else
 * goes to stdout); otherwise the command prints a human summary itself.
 * Errors become one line on stderr (`zbk: <message>`), or with `--json` an
 * `{"error": {...}}` object on stdout, and the process exits with the code
 * of the error class (see src/errors.ts and the README's table).
 */
import { Command, Flags, type Interfaces } from '@oclif/core';
import { loadConfig, resolveConfigPath, type ZbkConfig } from '../config/config.js';
import { ExitCode, ZbkError } from '../errors.js';
import { createContext, type Logger, type ServiceContext } from '../services/context.js';
import { passphraseSource, type PassphraseSource } from '../services/passphrase.js';
import { canPrompt, promptHidden, promptNewPassphrase } from './prompt.js';

export type BaseFlags<T extends typeof Command> = Interfaces.InferredFlags<(typeof BaseCommand)['baseFlags'] & T['flags']>;

export abstract class BaseCommand extends Command {
  static override enableJsonFlag = true;

  static override baseFlags = {
    config: Flags.string({
      description: 'Config file (default: $ZBK_CONFIG, /etc/zbk/config.toml for root, else ~/.config/zbk/config.toml).',
      helpGroup: 'GLOBAL',
    }),
  };

  /** The config path in force for this invocation. */
  protected configPath(flags: { config?: string }): string {
    return resolveConfigPath(flags.config);
  }

  protected loadConfig(flags: { config?: string }): ZbkConfig {
    return loadConfig(this.configPath(flags));
  }

  /** Human output goes to stdout only when not in --json mode. */
  protected say(message: string): void {
    if (!this.jsonEnabled()) this.log(message);
  }

  /** Progress and warnings go to stderr, so stdout stays clean for pipes. */
  protected note(message: string): void {
    if (!this.jsonEnabled()) process.stderr.write(`${message}\n`);
  }

  /** Notes and warnings on stderr; silent with --json (warnings still reach the JSON result). */
  protected logger(): Logger {
    return {
      info: (m) => this.note(m),
      warn: (m) => this.note(`warning: ${m}`),
    };
  }

  /** Passphrase from ZBK_PASSPHRASE_FILE / config, else a terminal prompt. */
  protected passphrase(config?: ZbkConfig): PassphraseSource {
    return passphraseSource(
      config?.passphraseFile,
      canPrompt() ? (purpose) => (purpose === 'new' ? promptNewPassphrase() : promptHidden('Passphrase: ')) : undefined,
      config?.path,
    );
  }

  /** Load the config (then `adjust` it, e.g. a flag overriding a key) and open the services' context. */
  protected context(flags: { config?: string }, adjust?: (config: ZbkConfig) => void): ServiceContext {
    const config = this.loadConfig(flags);
    adjust?.(config);
    return createContext(config, this.passphrase(config), { log: this.logger() });
  }

  protected override async catch(err: Error & { exitCode?: number }): Promise<unknown> {
    // oclif's own parse errors (unknown flag, missing argument) → usage exit code.
    const oclifExit = (err as { oclif?: { exit?: number } }).oclif?.exit;
    if (!(err instanceof ZbkError)) {
      if (oclifExit !== undefined && oclifExit !== 0 && /flag|argument|Expected|Missing|Unexpected/i.test(err.message)) {
        return this.fail(err.message.split('\n')[0] ?? 'usage error', 'USAGE', ExitCode.USAGE);
      }
      if (oclifExit === 0) throw err;
      const code = (err as { code?: string }).code;
      if (code === 'EEXIT') throw err;
      const debug = process.env.ZBK_DEBUG ? `\n${err.stack ?? ''}` : '';
      return this.fail(`${(err.message || String(err)).split('\n')[0]}${debug}`, 'INTERNAL', ExitCode.FAILURE);
    }
    return this.fail(err.message, err.code, err.exitCode);
  }

  private fail(message: string, code: string, exitCode: number): never {
    if (this.jsonEnabled()) {
      process.stdout.write(JSON.stringify({ error: { code, message, exitCode } }, null, 2) + '\n');
    } else {
      process.stderr.write(`zbk: ${message}\n`);
    }
    this.exit(exitCode);
  }
}
