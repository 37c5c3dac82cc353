import { Args, Command, loadHelpClass } from '@oclif/core';
import { ExitCode } from '../src/errors.js';

/**
 * `zbk help [COMMAND...]`: the same help as `zbk COMMAND --help` (what
 * @oclif/plugin-help's command does, without the extra dependency).
 */
export default class Help extends Command {
  static override summary = 'Show the help of zbk or of one of its commands (same as "zbk COMMAND --help").';
  static override description = 'Exit codes: 0 ok, 2 no such command or topic.';
  static override examples = ['<%= config.bin %> help push', '<%= config.bin %> help restore plan'];
  static override strict = false;
  static override args = { command: Args.string({ description: 'Command (or topic) to show the help of.', required: false }) };

  async run(): Promise<void> {
    const { argv } = await this.parse(Help);
    const HelpClass = await loadHelpClass(this.config);
    const help = new HelpClass(this.config, this.config.pjson.oclif.helpOptions ?? this.config.pjson.helpOptions);
    try {
      await help.showHelp(argv as string[]);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      if (!/not found/i.test(message)) throw err;
      process.stderr.write(`zbk: ${message.replace(/\.$/, '')}: run "zbk help" for the list of commands\n`);
      this.exit(ExitCode.USAGE);
    }
  }
}
