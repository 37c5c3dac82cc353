/**
 * `zbk schedule`: systemd units, a sanoid hook and a NixOS snippet, filled in
 * for this config. Pure text generation: nothing is installed, so the user
 * reviews what runs as root before copying it (see docs/OPERATIONS.md).
 * The templates match scripts/systemd/ and scripts/sanoid/.
 */
export interface ScheduleInput {
  /** Absolute path of the zbk executable. */
  zbkPath: string;
  configPath: string;
  /** Passphrase file to hand to the services (never its contents). */
  passphraseFile: string | null;
  /**
   * The directory the units may write: the state dir, or with the default
   * per-repository state dirs their base (`/var/lib/zbk`), which also holds
   * an older zbk's shared manifest until its first run moves it.
   */
  stateDir: string;
  /** Daily push time, systemd OnCalendar syntax. */
  pushAt: string;
  maxAge: string;
  /** Restore drill/recovery: dataset and target for the daily `restore run` unit. */
  restoreDataset: string;
  restoreTarget: string;
  /** Configured dataset names: a btrfs one (an absolute path) under a directory ProtectHome hides needs that directory writable (pins, `zbk snapshot`). */
  datasets?: readonly string[];
}

/** The directories ProtectHome= makes read-only. */
const HOME_DIRS = ['/home', '/root', '/run/user'];

/** What the units must make writable beyond the state dir: the home directories holding a btrfs dataset (or the restore target). */
export function homeDirsWritten(paths: readonly string[]): string[] {
  return HOME_DIRS.filter((h) => paths.some((p) => p === h || p.startsWith(`${h}/`)));
}

export interface ScheduleFile {
  /** Suggested install path. */
  path: string;
  content: string;
}

export interface ScheduleResult {
  files: ScheduleFile[];
}

function env(i: ScheduleInput): string {
  return [`Environment=ZBK_CONFIG=${i.configPath}`, ...(i.passphraseFile ? [`Environment=ZBK_PASSPHRASE_FILE=${i.passphraseFile}`] : [])].join('\n');
}

const HARDENING = `# Secrets stay private; zfs needs /dev/zfs and the pool mountpoints; btrfs writes zbk's pins on the dataset's filesystem.
UMask=0077
NoNewPrivileges=true
PrivateTmp=true
ProtectHome=read-only`;

function service(i: ScheduleInput, name: string, description: string, args: string): string {
  return `[Unit]
Description=${description}
Wants=network-online.target
After=network-online.target zfs.target

[Service]
Type=oneshot
${env(i)}
ExecStart=${i.zbkPath} ${args}
# A push may run for hours on a slow uplink and resumes if killed.
TimeoutStartSec=infinity
Nice=10
IOSchedulingClass=idle
${HARDENING}
# "-": a directory that does not exist yet must not keep the unit from starting (zbk init makes it).
ReadWritePaths=-${i.stateDir}
${homeDirsWritten([...(i.datasets ?? []), i.restoreTarget]).map((d) => `# A btrfs dataset (or restore target) is below ${d}: zbk writes its pins and snapshots there.\nReadWritePaths=${d}\n`).join('')}SyslogIdentifier=${name}
`;
}

function timer(description: string, onCalendar: string): string {
  return `[Unit]
Description=${description}

[Timer]
OnCalendar=${onCalendar}
RandomizedDelaySec=15min
Persistent=true

[Install]
WantedBy=timers.target
`;
}

/** What the check unit's exit status means (monitoring-plugins codes; any but 0 marks the unit failed). */
const CHECK_EXIT_NOTE =
  '# Exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (monitoring-plugins codes): any but 0 marks the unit failed;\n' +
  '# --notify pings the success URL only for OK. "journalctl -u zbk-check" shows the one-line reason.';

/** Every file, filled in. */
export function scheduleFiles(i: ScheduleInput): ScheduleResult {
  const files: ScheduleFile[] = [
    { path: '/etc/systemd/system/zbk-push.service', content: service(i, 'zbk-push', 'zbk: push new snapshots to S3', 'push') },
    { path: '/etc/systemd/system/zbk-push.timer', content: timer('zbk: daily push', i.pushAt) },
    {
      path: '/etc/systemd/system/zbk-check.service',
      content: service(i, 'zbk-check', 'zbk: check backup freshness', `check --max-age ${i.maxAge} --notify`).replace('[Service]', `[Service]\n${CHECK_EXIT_NOTE}`),
    },
    { path: '/etc/systemd/system/zbk-check.timer', content: timer('zbk: hourly freshness check', 'hourly') },
    {
      path: '/etc/systemd/system/zbk-restore.service',
      content: service(i, 'zbk-restore', 'zbk: next step of the active restore plan', `restore run ${i.restoreDataset} --target ${i.restoreTarget}`).replace(
        '[Service]',
        '[Service]\n# Enable zbk-restore.timer only while a restore plan is active; disable it when "zbk restore status" says done.',
      ),
    },
    { path: '/etc/systemd/system/zbk-restore.timer', content: timer('zbk: daily restore step while a plan is active', 'daily') },
    {
      path: '/etc/sanoid/zbk-post-snapshot.sh',
      content: `#!/bin/sh
# sanoid post_snapshot_script: push after sanoid has taken its snapshots.
# In sanoid.conf, per template:  post_snapshot_script = /etc/sanoid/zbk-post-snapshot.sh
#                                script_timeout = 0
# Runs in the background so sanoid is not held up by a long upload; the
# manifest lock serialises overlapping runs.
export ZBK_CONFIG=${i.configPath}
${i.passphraseFile ? `export ZBK_PASSPHRASE_FILE=${i.passphraseFile}\n` : ''}exec systemctl start --no-block zbk-push.service
`,
    },
  ];
  return { files };
}

/** NixOS module example (documentation; printed by `zbk schedule --nixos`). */
export function nixosExample(i: ScheduleInput): string {
  return `# configuration.nix
{ pkgs, ... }: {
  systemd.services.zbk-push = {
    description = "zbk: push new ZFS snapshots to S3";
    after = [ "network-online.target" "zfs.target" ];
    wants = [ "network-online.target" ];
    path = [ pkgs.zfs ];
    environment = { ZBK_CONFIG = "${i.configPath}";${i.passphraseFile ? ` ZBK_PASSPHRASE_FILE = "${i.passphraseFile}";` : ''} };
    serviceConfig = { Type = "oneshot"; ExecStart = "${i.zbkPath} push"; UMask = "0077"; Nice = 10; };
    startAt = "${i.pushAt}";
  };
  systemd.services.zbk-check = {
    description = "zbk: check backup freshness";
    environment = { ZBK_CONFIG = "${i.configPath}"; };
    serviceConfig = { Type = "oneshot"; ExecStart = "${i.zbkPath} check --max-age ${i.maxAge} --notify"; };
    startAt = "hourly";
  };
}
`;
}
