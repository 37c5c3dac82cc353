import { Flags } from '@oclif/core';
import { BaseCommand } from '../src/cli/base-command.js';
import { passphraseFilePath } from '../src/services/passphrase.js';
import { checkMetricsTextfile, nixosExample, scheduleFiles, type ScheduleResult } from '../src/services/schedule.js';

export default class Schedule extends BaseCommand {
  static override summary = 'Print systemd units, a sanoid hook and a NixOS example, filled in for this config.';
  static override description = `Nothing is installed: review the output, then copy the files (paths are shown) and run "systemctl daemon-reload && systemctl enable --now zbk-push.timer zbk-check.timer". Templates: scripts/systemd/, scripts/sanoid/. See docs/OPERATIONS.md.

Exit codes: 0 ok, 3 config.`;
  static override examples = [
    '<%= config.bin %> schedule',
    '<%= config.bin %> schedule --push-at "*-*-* 03:30" --nixos',
    '<%= config.bin %> schedule --metrics-textfile /var/lib/prometheus/node-exporter',
  ];
  static override flags = {
    'push-at': Flags.string({ description: 'systemd OnCalendar time of the daily push.', default: '*-*-* 02:30' }),
    'max-age': Flags.string({ description: 'Max age for the hourly "zbk check".', default: '26h' }),
    'restore-dataset': Flags.string({ description: 'Dataset for the restore unit.', default: '<dataset>' }),
    'restore-target': Flags.string({ description: 'Target dataset (btrfs: directory) for the restore unit.', default: '<pool>/restored' }),
    nixos: Flags.boolean({ description: 'Print a NixOS configuration.nix example instead.' }),
    'metrics-textfile': Flags.string({
      description: 'node_exporter\'s textfile directory: the push unit refreshes DIR/zbk.prom ("zbk metrics --textfile DIR") after every push, failed ones too.',
      helpValue: 'DIR',
    }),
  };

  async run(): Promise<ScheduleResult> {
    const { flags } = await this.parse(Schedule);
    const config = this.loadConfig(flags);
    const input = {
      zbkPath: process.argv[1] ?? 'zbk',
      configPath: config.path,
      passphraseFile: passphraseFilePath(config.passphraseFile) ?? null,
      stateDir: config.legacyStateDir ?? config.stateDir,
      pushAt: flags['push-at'],
      maxAge: flags['max-age'],
      restoreDataset: flags['restore-dataset'],
      restoreTarget: flags['restore-target'],
      datasets: config.datasets.map((d) => d.name),
      metricsTextfile: flags['metrics-textfile'] !== undefined ? checkMetricsTextfile(flags['metrics-textfile']) : null,
    };
    if (flags.nixos) {
      const nix = nixosExample(input);
      this.say(nix);
      return { files: [{ path: 'configuration.nix', content: nix }] };
    }
    const result = scheduleFiles(input);
    for (const f of result.files) this.say(`# ---- ${f.path}\n${f.content}`);
    return result;
  }
}
