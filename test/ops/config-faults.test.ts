/**
 * A bad config through the CLI: a typo (`keep_lst = 7`), an unknown section,
 * a wrong type, a TOML syntax error. Every command refuses with exit 3 and
 * one line naming file, line and key before it touches anything (a monthly
 * `consolidate --apply` must not run with `keep_last` silently at its
 * default of 1), and `zbk doctor` reports the same line as its failing
 * "config file" check, with the fix.
 */
import assert from 'node:assert/strict';
import { appendFileSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { DoctorResult } from '../../src/services/doctor.js';
import { createRepo, type TestRepo } from './helpers.js';

/** Every file under `dir` with its size and mtime: equal snapshots mean nothing was written. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string): void => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      const st = statSync(p);
      if (st.isDirectory()) walk(p);
      else out[p] = `${st.size}@${st.mtimeMs}`;
    }
  };
  walk(dir);
  return out;
}

describe('a bad config file', () => {
  let repo: TestRepo;
  let good: string;
  before(async () => {
    repo = await createRepo({ datasets: ['tank/docs'] });
    good = readFileSync(repo.configPath, 'utf8');
  });
  after(() => repo.cleanup());

  /** The config with `extra` appended; returns the 1-based line of the first appended line. */
  const withLines = (...extra: string[]): number => {
    writeFileSync(repo.configPath, good, { mode: 0o600 });
    appendFileSync(repo.configPath, `\n${extra.join('\n')}\n`);
    return good.split('\n').length + 1;
  };

  it('keep_lst = 7: push and consolidate --apply refuse with exit 3 naming file, line, key and keep_last, and touch nothing', async () => {
    const line = withLines('[retention]', 'keep_lst = 7') + 1;
    const expected = `${repo.configPath}:${line}: unknown key \`keep_lst\` in [retention] — did you mean \`keep_last\`?`;
    const before = { ...snapshot(repo.storeDir), ...snapshot(repo.stateDir) };
    for (const args of [['consolidate', '--apply'], ['push', 'tank/docs'], ['push'], ['status'], ['cost']]) {
      const r = await repo.run(args);
      assert.equal(r.code, 3, `zbk ${args.join(' ')}: ${r.stderr}`);
      assert.equal(r.stderr, `zbk: ${expected}\n`, `zbk ${args.join(' ')}`);
      assert.equal(r.stdout, '');
    }
    const j = await repo.runJson<{ error: { code: string; message: string; exitCode: number } }>(['consolidate', '--apply']);
    assert.deepEqual(j.json.error, { code: 'CONFIG_UNKNOWN_KEY', message: expected, exitCode: 3 });
    assert.deepEqual({ ...snapshot(repo.storeDir), ...snapshot(repo.stateDir) }, before, 'nothing in the store or the state dir changed');
  });

  it('an unknown section, a wrong type and an unknown [[dataset]] key are refused the same way', async () => {
    const cases: [string[], number, string][] = [
      [['[retension]', 'keep_last = 7'], 0, 'unknown section [retension] — did you mean [retention]?'],
      [['[retention]', 'keep_last = "7"'], 1, 'retention.keep_last must be a number, got a string'],
      [['[[dataset]]', 'name = "tank/more"', 'snapshot_patern = "^daily"'], 2, 'unknown key `snapshot_patern` in [[dataset]] "tank/more" — did you mean `snapshot_pattern`?'],
    ];
    for (const [lines, offset, message] of cases) {
      const line = withLines(...lines) + offset;
      const r = await repo.run(['consolidate', '--apply']);
      assert.equal(r.code, 3, r.stderr);
      assert.equal(r.stderr, `zbk: ${repo.configPath}:${line}: ${message}\n`);
    }
  });

  it('a TOML syntax error gives line and column, and never the line itself (it holds a webhook token)', async () => {
    const line = withLines('[hooks]', 'on_success = https://hc-ping.example.invalid/secret-token-1') + 1;
    const r = await repo.run(['push', 'tank/docs']);
    assert.equal(r.code, 3);
    assert.equal(r.stderr, `zbk: ${repo.configPath}:${line}:14: invalid TOML: invalid value\n`);
    const d = await repo.runJson<DoctorResult>(['doctor']);
    const human = await repo.run(['doctor']);
    for (const out of [r.stderr, JSON.stringify(d.json), human.stdout, human.stderr]) assert.ok(!out.includes('secret-token'), 'webhook token leaked');
    assert.equal(d.json.checks[0]?.fix, `fix the TOML syntax at line ${line}, column 14 of ${repo.configPath}`);
  });

  it('doctor reports the same error as its failing "config file" check, with the one-line fix (exit 3)', async () => {
    const line = withLines('[retention]', 'keep_lst = 7') + 1;
    const expected = `${repo.configPath}:${line}: unknown key \`keep_lst\` in [retention] — did you mean \`keep_last\`?`;
    const r = await repo.runJson<DoctorResult>(['doctor']);
    assert.equal(r.code, 3, r.stderr);
    assert.equal(r.json.ok, false);
    assert.deepEqual(r.json.checks[0], { name: 'config file', status: 'fail', detail: expected, fix: `rename \`keep_lst\` to \`keep_last\` (line ${line} of ${repo.configPath})` });
    assert.equal(r.json.counts.fail, 1);
    const human = await repo.run(['doctor']);
    assert.equal(human.code, 3);
    assert.match(human.stdout, new RegExp(`^FAIL {2}config file: ${expected.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\n {6}fix: rename \`keep_lst\` to \`keep_last\``, 'm'));
    assert.match(human.stdout, /1 failed/);

    // A missing config is reported the same way.
    const none = await repo.runJson<DoctorResult>(['doctor'], { ZBK_CONFIG: join(repo.dir, 'nope.toml') });
    assert.equal(none.code, 3);
    assert.equal(none.json.checks[0]?.status, 'fail');
    assert.match(none.json.checks[0]?.fix ?? '', /zbk init/);

    // Fixed, doctor passes the config again.
    writeFileSync(repo.configPath, good, { mode: 0o600 });
    const ok = await repo.runJson<DoctorResult>(['doctor']);
    assert.equal(ok.json.checks.find((c) => c.name === 'config file')?.status, 'ok');
  });
});
