import { Args, Command } from '@oclif/core';
import { cliModel } from '../src/cli/command-model.js';
import { completionScript, SHELLS, type Shell } from '../src/cli/completion.js';

/**
 * `zbk completion <shell>`: print a self-contained completion script built
 * from the installed commands (no network, no cache directory, nothing runs
 * at TAB time).
 */
export default class Completion extends Command {
  static override summary = 'Print the shell completion script for bash, zsh or fish.';
  static override description = `The script completes command and topic words, flags, the choices of flags such as --kdf and --tier, file names for --config and dataset paths, and directories for DIR flags. It is self-contained: pressing TAB runs no zbk process and needs no network. It lists the commands of this version: print it again after upgrading zbk.

bash: "zbk completion bash > /etc/bash_completion.d/zbk" (every user; for yourself ~/.local/share/bash-completion/completions/zbk), or add "source <(zbk completion bash)" to ~/.bashrc.

zsh: "zbk completion zsh > /usr/local/share/zsh/site-functions/_zbk" (any directory in $fpath), or add "source <(zbk completion zsh)" to ~/.zshrc after compinit.

fish: "zbk completion fish > ~/.config/fish/completions/zbk.fish" (every user: /etc/fish/completions/zbk.fish).

Then start a new shell.

Exit codes: 0 ok, 2 no or unknown shell.`;
  static override examples = [
    '<%= config.bin %> completion bash > /etc/bash_completion.d/zbk',
    '<%= config.bin %> completion zsh > /usr/local/share/zsh/site-functions/_zbk',
    '<%= config.bin %> completion fish > ~/.config/fish/completions/zbk.fish',
  ];
  static override args = {
    shell: Args.string({ description: 'The shell to complete in.', options: [...SHELLS], required: true }),
  };

  async run(): Promise<void> {
    const { args } = await this.parse(Completion);
    process.stdout.write(completionScript(args.shell as Shell, cliModel(this.config)));
  }
}
