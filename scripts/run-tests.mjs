#!/usr/bin/env node
// Runs the compiled test files (dist/test/**/*.test.js) with Node's built-in
// test runner. `npm test` builds first, then calls this.
//   node scripts/run-tests.mjs              all tests
//   node scripts/run-tests.mjs --only store tests under test/store/ only
//   node scripts/run-tests.mjs --unit       everything except tests that need ZFS or run the CLI end to end
//   node scripts/run-tests.mjs --openzfs    the OpenZFS suite: test/openzfs/ plus the shared suites
//                                           below, run under scripts/openzfs/run (npm run test:openzfs)
// test/openzfs/ is not part of the default run: it needs the guest.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

const args = process.argv.slice(2);
const only = args.includes('--only') ? args[args.indexOf('--only') + 1] : undefined;
const unit = args.includes('--unit');
const openzfs = args.includes('--openzfs');
const root = join(process.cwd(), 'dist', 'test');
// Areas whose tests need ZFS or spawn the CLI end to end.
const heavy = new Set(['zfs', 'btrfs', 'e2e', 'ops', 'restore', 'consolidate', 'openzfs', 'recovery']);

/**
 * Test pools a killed test process left in the shared guest (its exit hooks
 * never ran): a `zbkt…` pool whose host temp dir is gone is nobody's. Its
 * sshfs mount went with that dir's process; destroy the pool and its file in
 * the guest's RAM-backed /zbk so leftovers do not pile up.
 */
function removeStaleGuestPools() {
  const list = spawnSync('zfs', ['get', '-H', '-o', 'name,value', 'mountpoint', '-t', 'filesystem', '-d', '0'], { encoding: 'utf8' });
  if (list.status !== 0) return; // the suites themselves report a guest that does not answer
  for (const line of list.stdout.split('\n')) {
    const [name, mountpoint] = line.split('\t');
    if (!name?.startsWith('zbkt') || !mountpoint?.startsWith('/')) continue;
    const hostDir = mountpoint.replace(/\/mnt$/, '');
    if (existsSync(hostDir)) continue;
    console.error(`run-tests: destroying ${name}, a test pool left in the guest by a killed run`);
    spawnSync('zpool', ['destroy', '-f', name], { stdio: 'inherit' });
    spawnSync('zbk-guest', ['rm', '-rf', `/zbk/${name}.img`, hostDir], { stdio: 'inherit' });
  }
}

function walk(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...walk(p));
    else if (name.endsWith('.test.js')) out.push(p);
  }
  return out;
}

// Suites shared by both ZFS implementations that the OpenZFS lane runs too
// (parameterized over the ZFS under test by test/helpers/pool.ts).
const openzfsShared = new Set([
  'zfs/zfs.test.js',
  'e2e/push.test.js',
  'consolidate/e2e.test.js',
  'ops/verify-deep.test.js',
  'restore/kill.test.js',
]);

let files = walk(root).sort();
const area = (f) => relative(root, f).split('/')[0];
if (openzfs) {
  if (process.env.ZBK_TEST_ZFS !== 'openzfs') {
    console.error('run-tests: --openzfs runs under scripts/openzfs/run (use npm run test:openzfs)');
    process.exit(1);
  }
  files = files.filter((f) => area(f) === 'openzfs' || openzfsShared.has(relative(root, f)));
  removeStaleGuestPools();
} else {
  files = files.filter((f) => area(f) !== 'openzfs');
}
if (only) files = files.filter((f) => area(f) === only);
if (unit) files = files.filter((f) => !heavy.has(area(f)));
if (files.length === 0) {
  console.error('run-tests: no test files found (did the build run?)');
  process.exit(1);
}
const concurrency = process.env.ZBK_TEST_CONCURRENCY ?? '2';

// A hung test must fail the run, not eat CI's whole budget in silence: the
// suite runs in its own process group under a watchdog (ZBK_TEST_WATCHDOG_MIN,
// minutes; 0 = none; the OpenZFS lane as a whole has 50 in scripts/test.sh). On expiry it prints what was still running (the hung
// commands, e.g. a zfs that never returned) and kills the group.
const watchdogMin = Number(process.env.ZBK_TEST_WATCHDOG_MIN ?? (openzfs ? 40 : 25));
const child = spawn(process.execPath, ['--test', `--test-concurrency=${concurrency}`, '--test-reporter=spec', ...files], {
  stdio: 'inherit',
  env: process.env,
  detached: true,
});
const killGroup = (signal) => {
  try {
    process.kill(-child.pid, signal);
  } catch {
    // already gone
  }
};
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(sig, () => killGroup(sig));
let timedOut = false;
const watchdog =
  watchdogMin > 0
    ? setTimeout(() => {
        timedOut = true;
        console.error(`run-tests: the suite did not finish within ${watchdogMin} min (ZBK_TEST_WATCHDOG_MIN); still running:`);
        spawnSync('sh', ['-c', `ps -eo pid,pgid,etime,args | awk -v g=${child.pid} 'NR == 1 || $2 == g'`], { stdio: ['ignore', 2, 2] });
        killGroup('SIGKILL');
      }, watchdogMin * 60_000)
    : undefined;
child.on('exit', (code) => {
  if (watchdog) clearTimeout(watchdog);
  killGroup('SIGKILL'); // test processes a finished runner left behind
  process.exit(timedOut ? 124 : (code ?? 1));
});
