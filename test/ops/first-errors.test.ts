/**
 * The errors a user meets first, through the real CLI: a wrong endpoint is
 * named with its errno within seconds at a terminal (ZBK_RETRY=quick stands
 * in for the terminal here: tests have none), `zbk help push` works, and a
 * dataset zbk does not know is an error rather than an empty status.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createRepo, runZbk, type TestRepo } from './helpers.js';
import { closedPort } from '../helpers/ports.js';

const SECRET = 'wJalrXUtnFEMI-test-secret-never-printed';
const AWS_ENV = { AWS_ACCESS_KEY_ID: 'AKIATESTNOTREAL', AWS_SECRET_ACCESS_KEY: SECRET };


/** One line on stderr, no stack, no internal names, no secret. */
function assertOneLine(stderr: string, expected: string): void {
  const lines = stderr.trim().split('\n');
  assert.equal(lines[lines.length - 1], expected, stderr);
  assert.doesNotMatch(stderr, /\n\s+at \S|getBytes|callerIdentity|node_modules|@smithy|TCPConnectWrap/, stderr);
  assert.ok(!stderr.includes(SECRET), 'the secret key is never printed');
}

describe('a store that cannot be reached', () => {
  let repo: TestRepo;
  let endpoint: string;
  before(async () => {
    repo = await createRepo({ init: false });
    endpoint = `http://127.0.0.1:${await closedPort()}`;
  });
  after(() => repo.cleanup());

  it('init, interactively (quick): exit 5 within seconds, naming the endpoint and ECONNREFUSED; nothing written', async () => {
    const started = Date.now();
    const r = await repo.run(['init', '--store', 's3://zbk-test/pfx', '--endpoint', endpoint, '--path-style', '--region', 'us-east-1', '--state-dir', repo.stateDir, '--kdf', 'min'], {
      ...AWS_ENV,
      ZBK_RETRY: 'quick',
    });
    const took = Date.now() - started;
    assert.equal(r.code, 5, r.stderr);
    assertOneLine(r.stderr, `zbk: cannot reach the store at ${endpoint}: ECONNREFUSED (connection refused)`);
    // Generous on a loaded machine; the patient budget waits well over a minute.
    assert.ok(took < 20_000, `took ${took} ms`);
  });

  it('a command on an existing config: the same line, and the JSON error names the code', async () => {
    const config = join(repo.dir, 'config.toml');
    writeFileSync(config, `state_dir = ${JSON.stringify(repo.stateDir)}\n[store]\nurl = "s3://zbk-test/pfx"\nendpoint = "${endpoint}"\npath_style = true\nregion = "us-east-1"\n`, { mode: 0o600 });
    const started = Date.now();
    const r = await repo.run(['manifest', 'rebuild'], { ...AWS_ENV, ZBK_RETRY: 'quick' });
    assert.equal(r.code, 5, r.stderr);
    assertOneLine(r.stderr, `zbk: cannot reach the store at ${endpoint}: ECONNREFUSED (connection refused)`);
    const j = await repo.runJson<{ error: { code: string; exitCode: number; message: string } }>(['manifest', 'rebuild'], { ...AWS_ENV, ZBK_RETRY: 'quick' });
    assert.equal(j.code, 5);
    assert.deepEqual(j.json.error, { code: 'UNREACHABLE', exitCode: 5, message: `cannot reach the store at ${endpoint}: ECONNREFUSED (connection refused)` });
    assert.ok(Date.now() - started < 40_000);
  });

  it('an invalid ZBK_RETRY is a config error', async () => {
    const r = await repo.run(['manifest', 'rebuild'], { ...AWS_ENV, ZBK_RETRY: 'eventually' });
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /ZBK_RETRY must be "patient" or "quick"/);
  });
});

describe('zbk help', () => {
  it('zbk help push prints the usage of push, as zbk push --help does', async () => {
    const help = await runZbk(['help', 'push'], {});
    assert.equal(help.code, 0, help.stderr);
    assert.match(help.stdout, /USAGE\n\s+\$ zbk push/);
    assert.match(help.stdout, /--dry-run/);
    const flag = await runZbk(['push', '--help'], {});
    assert.equal(flag.code, 0, flag.stderr);
    assert.equal(help.stdout, flag.stdout);
  });

  it('topics, nested commands and the command list', async () => {
    const plan = await runZbk(['help', 'restore', 'plan'], {});
    assert.equal(plan.code, 0, plan.stderr);
    assert.match(plan.stdout, /\$ zbk restore plan/);
    const root = await runZbk(['help'], {});
    assert.equal(root.code, 0, root.stderr);
    assert.match(root.stdout, /COMMANDS[\s\S]*\bpush\b/);
  });

  it('zbk help <unknown>: exit 2, one line', async () => {
    const r = await runZbk(['help', 'nosuch'], {});
    assert.equal(r.code, 2);
    assert.equal(r.stderr.trim(), 'zbk: Command nosuch not found: run "zbk help" for the list of commands');
  });
});

describe('zbk status <dataset> zbk does not know', () => {
  let repo: TestRepo;
  before(async () => {
    repo = await createRepo({ datasets: ['tank/photos'] });
  });
  after(() => repo.cleanup());

  it('exit 2, one line naming what is configured and pushed', async () => {
    const r = await repo.run(['status', 'nosuch/ds']);
    assert.equal(r.code, 2, r.stderr);
    assert.equal(r.stderr.trim(), 'zbk: nosuch/ds is neither a configured dataset nor one that was pushed (configured: tank/photos; pushed: none)');
    assert.equal(r.stdout, '');
    const j = await repo.runJson<{ error: { code: string; exitCode: number } }>(['status', 'nosuch/ds']);
    assert.equal(j.code, 2);
    assert.equal(j.json.error.code, 'UNKNOWN_DATASET');
  });

  it('a configured dataset with nothing pushed yet is fine', async () => {
    const r = await repo.run(['status', 'tank/photos']);
    assert.equal(r.code, 0, r.stderr);
  });
});
