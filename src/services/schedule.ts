/**
 * `zbk schedule`: systemd units, a sanoid hook and a NixOS snippet, filled in
 * for this config. Pure text generation: nothing is installed, so the user
 * reviews what runs as root before copying it (see docs/OPERATIONS.md).
 * The templates match scripts/systemd/ and scripts/sanoid/.
 */
import { UsageError } from '../errors.js';

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
  /** node_exporter's textfile directory: the push unit refreshes `<dir>/zbk.prom` (`zbk metrics --textfile`) after every run. */
  metricsTextfile?: string | null;
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

/**
 * The push unit's refresh of the Prometheus textfile: ExecStopPost= runs
 * after the push whether it succeeded or failed (ExecStartPost= only after a
 * success), "-" keeps its own failure from failing the unit, and
 * TimeoutStopSec= gives it the store's retry budget (the default 90 s would
 * kill it while the store is unreachable).
 */
function metricsRefresh(i: ScheduleInput): string {
  const dir = i.metricsTextfile;
  if (!dir) return '';
  return `# Refresh ${dir}/zbk.prom (Prometheus metrics, node_exporter's textfile collector) after every push, failed ones too:
# ExecStopPost= runs on success and on failure; "-": a failed refresh does not fail the unit (the file keeps its last content).
ExecStopPost=-${i.zbkPath} metrics --textfile ${dir}
TimeoutStopSec=10min
`;
}

/** A textfile directory the units can name: absolute, and nothing systemd would split or expand. */
export function checkMetricsTextfile(dir: string): string {
  // eslint-disable-next-line no-control-regex
  if (!dir.startsWith('/') || /[\s"'\\$%;\u0000-\u001f\u007f]/.test(dir)) {
    throw new UsageError(`--metrics-textfile ${JSON.stringify(dir)}: give an absolute directory path without spaces, quotes, "$", "%" or ";" (e.g. /var/lib/prometheus/node-exporter)`, 'BAD_TEXTFILE_DIR');
  }
  return dir.length > 1 ? dir.replace(/\/+$/, '') : dir;
}

function service(i: ScheduleInput, name: string, description: string, args: string, post = ''): string {
  return `[Unit]
Description=${description}
Wants=network-online.target
After=network-online.target zfs.target

[Service]
Type=oneshot
${env(i)}
ExecStart=${i.zbkPath} ${args}
${post}# A push may run for hours on a slow uplink and resumes if killed.
TimeoutStartSec=infinity
Nice=10
IOSchedulingClass=idle
${HARDENING}
# "-": a directory that does not exist yet must not keep the unit from starting (zbk init makes it).
ReadWritePaths=-${i.stateDir}
${post ? `ReadWritePaths=-${i.metricsTextfile}\n` : ''}${homeDirsWritten([...(i.datasets ?? []), i.restoreTarget]).map((d) => `# A btrfs dataset (or restore target) is below ${d}: zbk writes its pins and snapshots there.\nReadWritePaths=${d}\n`).join('')}SyslogIdentifier=${name}
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
    { path: '/etc/systemd/system/zbk-push.service', content: service(i, 'zbk-push', 'zbk: push new snapshots to S3', 'push', metricsRefresh(i)) },
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
    serviceConfig = { Type = "oneshot"; ExecStart = "${i.zbkPath} push"; UMask = "0077"; Nice = 10;${i.metricsTextfile ? ` ExecStopPost = "-${i.zbkPath} metrics --textfile ${i.metricsTextfile}"; TimeoutStopSec = "10min";` : ''} };
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
