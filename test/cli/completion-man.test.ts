/**
 * Shell completion (`zbk completion bash|zsh|fish`), the generated man page
 * (dist/man/zbk.1, written by `npm run build`) and `zbk help <command>`, all
 * through real processes: the scripts are sourced into the real shells and
 * their completion driven there; the page is rendered by groff and man.
 *
 * zsh and fish come from Debian (scripts/test.sh installs them, with groff
 * and man-db): under CI a missing one fails, elsewhere its test is skipped.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test, type TestContext } from 'node:test';
import { Config } from '@oclif/core';
import { runZbk } from '../helpers/cli.js';
import { repoRoot } from '../helpers/paths.js';

const dir = mkdtempSync(join(tmpdir(), 'zbk-completion-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** The visible commands as oclif loads them (ids space-separated), with their flags. */
let commands: { id: string; flags: string[]; description: string }[] = [];
before(async () => {
  const config = await Config.load(repoRoot);
  commands = config.commands
    .filter((c) => !c.hidden)
    .map((c) => ({
      id: c.id.split(':').join(' '),
      flags: Object.entries(c.flags)
        .filter(([, f]) => !f.hidden)
        .map(([n]) => n),
      description: c.description ?? '',
    }));
  assert.ok(commands.length >= 20, `commands loaded: ${commands.length}`);
});

const env = { HOME: dir };

/** The completion script `zbk completion <shell>` prints, written to a file. */
async function script(shell: string, file: string): Promise<string> {
  const r = await runZbk(['completion', shell], env);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, '');
  assert.ok(r.stdout.length > 1000, `${shell} script is not empty`);
  writeFileSync(file, r.stdout);
  return r.stdout;
}

/** True when `program` is installed; otherwise fail under CI, else skip. */
function have(t: TestContext, program: string, pkg = program): boolean {
  if (spawnSync('sh', ['-c', 'command -v "$1"', 'sh', program]).status === 0) return true;
  const msg = `${program} is not installed (apt-get install ${pkg}; scripts/test.sh does)`;
  if (process.env.CI) assert.fail(msg);
  t.skip(msg);
  return false;
}

function run(cmd: string, args: string[], extraEnv: Record<string, string> = {}): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(cmd, args, {
    encoding: 'utf8',
    timeout: 60_000,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir, XDG_CONFIG_HOME: join(dir, 'config'), XDG_DATA_HOME: join(dir, 'data'), LANG: 'C.UTF-8', ...extraEnv },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** `zbk <command> --` for every command, and the flags each must offer (its own and --help); `zbk help` completes command words. */
const flagLines = (): { line: string; words: string[] }[] =>
  commands.filter((c) => c.id !== 'help').map((c) => ({ line: `zbk ${c.id} --`, words: sorted([...c.flags.map((f) => `--${f}`), '--help']) }));

const topLevel = (): string[] => [...new Set(commands.map((c) => c.id.split(' ')[0]!))].sort();
const sorted = (words: string[]): string[] => [...words].sort();

/** The command lines every shell completes, and the words it must offer (exactly these). */
const cases: { line: string; words: () => string[] }[] = [
  { line: 'zbk res', words: () => ['restore'] },
  { line: 'zbk restore ', words: () => ['plan', 'run', 'status'] },
  { line: 'zbk restore r', words: () => ['run'] },
  { line: 'zbk help restore ', words: () => ['plan', 'run', 'status'] },
  { line: 'zbk help re', words: () => ['restore'] },
  { line: 'zbk ', words: topLevel },
  { line: 'zbk restore run tank/photos --ta', words: () => ['--target'] },
  { line: 'zbk init --kdf ', words: () => ['interactive', 'min', 'moderate'] },
  { line: 'zbk completion ', words: () => ['bash', 'fish', 'zsh'] },
];

test('bash: the script parses, and completing drives its function to the right words, running no program', async (t) => {
  const file = join(dir, 'zbk.bash');
  const text = await script('bash', file);
  assert.match(text, /complete -o default -F _zbk zbk/);
  const syntax = run('bash', ['-n', file]);
  assert.equal(syntax.code, 0, syntax.stderr);

  // COMP_WORDS as bash's readline splits the line (at blanks, and "=" on its own); PATH emptied
  // after sourcing, so a completion that needed any program (zbk itself included) would fail.
  const drive = `source "$1"; shift; PATH=/nonexistent
    for line in "$@"; do
      read -ra COMP_WORDS <<< "$line"
      [[ "$line" == *" " ]] && COMP_WORDS+=("")
      if [[ "$line" == *= ]]; then w="\${COMP_WORDS[-1]}"; unset "COMP_WORDS[-1]"; COMP_WORDS+=("\${w%=}" "=" ""); fi
      COMP_CWORD=$(( \${#COMP_WORDS[@]} - 1 ))
      COMP_LINE="$line"; COMP_POINT=\${#line}
      _zbk
      printf '%s|%s\\n' "$line" "\${COMPREPLY[*]}"
    done`;
  const lines = [...cases.map((c) => c.line), ...flagLines().map((c) => c.line), 'zbk init --kdf=', 'zbk push tank/photos ', 'zbk cost '];
  const r = run('bash', ['-c', drive, 'drive', file, ...lines]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, '', 'no program was needed');
  const got = new Map(
    r.stdout
      .trim()
      .split('\n')
      .map((l) => {
        const [line, words] = l.split('|');
        return [line!, sorted(words!.split(' ').filter(Boolean))];
      }),
  );
  for (const c of cases) assert.deepEqual(got.get(c.line), sorted(c.words()), `bash: ${c.line}<TAB>`);
  assert.deepEqual(got.get('zbk init --kdf='), ['interactive', 'min', 'moderate'], '--kdf=<TAB>');
  assert.deepEqual(got.get('zbk push tank/photos '), [], 'no subcommands after an argument (file names from readline)');
  assert.deepEqual(got.get('zbk cost '), ['compare', 'simulate'], 'a command that is also a topic offers its subcommands');
  for (const c of flagLines()) assert.deepEqual(got.get(c.line), c.words, `bash: ${c.line}<TAB>`);
  t.diagnostic(`bash completes ${got.size} lines`);
});

/**
 * A zsh driving its real completion system in a pseudo-terminal (zsh/zpty):
 * compinit with the script in $fpath, each line typed with a TAB; compadd
 * records the matches it is given instead of inserting them.
 */
const zshCapture = `zmodload zsh/zpty
dir=$1 out=$2; shift 2
zpty z zsh -f -i
zpty -w z "fpath=($dir \\$fpath); autoload -Uz compinit; compinit -u -D; PROMPT=ZRE\\"\\"ADY\\\\>"
zpty -w z 'compadd () {
  if [[ \${@[1,(i)(-|--)]} == *-(O|A|D)\\ * ]]; then builtin compadd "$@"; return $?; fi
  typeset -a __hits; builtin compadd -A __hits "$@"; (( $#__hits == 0 )) && return 1
  print -r -- "\${(j: :)__hits}" >> '"$out"'
}'
integer n=0
# Wait for a marker the shell computes (its echo does not match) and for the next prompt (the line editor reads again).
sync_() { local chunk; (( n++ )); zpty -w z "print ZSYNC\\$(( $n + 1000 ))"; zpty -r z chunk "*ZSYNC$(( n + 1000 ))*ZREADY>*" }
sync_
for line in "$@"; do
  print -r -- ">>> $line" >> $out
  zpty -w -n z "$line"$'\\t'$'\\C-u'
  sync_
done
zpty -d z
`;

test('zsh: the script parses, and the real completion system offers the right words', async (t) => {
  if (!have(t, 'zsh')) return;
  const fpath = join(dir, 'zsh-functions');
  mkdirSync(fpath, { recursive: true });
  const file = join(fpath, '_zbk');
  const text = await script('zsh', file);
  assert.match(text, /^#compdef zbk\n/);
  const syntax = run('zsh', ['-n', file]);
  assert.equal(syntax.code, 0, syntax.stderr);

  const capture = join(dir, 'capture.zsh');
  const out = join(dir, 'zsh-matches');
  writeFileSync(capture, zshCapture);
  const lines = [...cases.map((c) => c.line), ...flagLines().map((c) => c.line), 'zbk init --kdf='];
  const r = run('timeout', ['60', 'zsh', '-f', capture, fpath, out, ...lines]);
  assert.equal(r.code, 0, `zsh capture: ${r.stderr}`);
  const got = new Map<string, string[]>();
  let current = '';
  for (const l of readFileSync(out, 'utf8').split('\n')) {
    if (l.startsWith('>>> ')) got.set((current = l.slice(4)), []);
    else if (l) got.get(current)!.push(...l.split(' '));
  }
  for (const c of cases) assert.deepEqual(sorted(got.get(c.line) ?? []), sorted(c.words()), `zsh: ${c.line}<TAB>`);
  // Every command's _arguments specs are accepted: zsh offers all its flags.
  for (const c of flagLines()) assert.deepEqual(sorted(got.get(c.line) ?? []), c.words, `zsh: ${c.line}<TAB>`);
  assert.deepEqual(sorted(got.get('zbk init --kdf=') ?? []), ['interactive', 'min', 'moderate'], 'zsh: --kdf=<TAB>');
});

test('fish: the script parses, and fish completes the right words', async (t) => {
  if (!have(t, 'fish')) return;
  const file = join(dir, 'zbk.fish');
  await script('fish', file);
  const syntax = run('fish', ['--no-config', '-n', file]);
  assert.equal(syntax.code, 0, syntax.stderr);
  const drive = 'source $argv[1]; for line in $argv[2..-1]; echo ">>> $line"; complete -C "$line"; end';
  const r = run('fish', ['--no-config', '-c', drive, file, ...cases.map((c) => c.line), ...flagLines().map((c) => c.line)]);
  assert.equal(r.code, 0, r.stderr);
  const got = new Map<string, string[]>();
  let current = '';
  for (const l of r.stdout.split('\n')) {
    if (l.startsWith('>>> ')) got.set((current = l.slice(4)), []);
    else if (l) got.get(current)!.push(l.split('\t')[0]!);
  }
  for (const c of cases) assert.deepEqual(sorted(got.get(c.line) ?? []), sorted(c.words()), `fish: ${c.line}<TAB>`);
  for (const c of flagLines()) assert.deepEqual(sorted(got.get(c.line) ?? []), c.words, `fish: ${c.line}<TAB>`);
  // Descriptions come with the words.
  assert.match(r.stdout, /^run\tDo the next step of the saved restore/m);
});

test('zbk completion needs a known shell (exit 2)', async () => {
  for (const args of [['completion'], ['completion', 'tcsh']]) {
    const r = await runZbk(args, env);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.equal(r.stdout, '');
  }
});

const manPage = join(repoRoot, 'dist', 'man', 'zbk.1');

test('the man page is built with the commands, renders without warnings and documents every command', (t) => {
  if (!have(t, 'groff', 'groff-base') || !have(t, 'man', 'man-db')) return;
  assert.ok(existsSync(manPage), 'npm run build writes dist/man/zbk.1');
  const roff = readFileSync(manPage, 'utf8');
  assert.match(roff, /^\.TH ZBK 1 /m);
  assert.ok(/^[\x20-\x7e\n]*$/.test(roff), 'plain ASCII roff (other characters as \\[uXXXX])');

  // The build's page is what the script renders from the built commands now (not a stale one).
  const fresh = join(dir, 'zbk.1');
  const gen = run(process.execPath, [join(repoRoot, 'scripts', 'gen-man.mjs'), fresh]);
  assert.equal(gen.code, 0, gen.stderr);
  const body = (s: string): string => s.replace(/^\.TH .*$/m, '');
  assert.equal(body(readFileSync(fresh, 'utf8')), body(roff), 'dist/man/zbk.1 is up to date with the commands');

  const groff = run('groff', ['-man', '-Tutf8', '-ww', '-z', manPage]);
  assert.equal(groff.code, 0, groff.stderr);
  assert.equal(groff.stderr, '', 'groff -ww: no warnings');

  const man = run('man', ['-l', manPage], { MANWIDTH: '80', MAN_KEEP_FORMATTING: '', PAGER: 'cat', MANPAGER: 'cat' });
  assert.equal(man.code, 0, man.stderr);
  assert.equal(man.stderr, '', 'man -l: no warnings');
  // Overstruck bold/underline (x BACKSPACE x), if man kept any: the last character wins.
  let text = '';
  for (const ch of man.stdout) text = ch === '\b' ? text.slice(0, -1) : text + ch;
  for (const section of ['NAME', 'SYNOPSIS', 'DESCRIPTION', 'COMMANDS', 'EXIT STATUS', 'ENVIRONMENT', 'FILES', 'SHELL COMPLETION']) {
    assert.match(text, new RegExp(`^${section}$`, 'm'), `section ${section}`);
  }
  for (const c of commands) {
    const start = text.search(new RegExp(`^ {3}zbk ${c.id}$`, 'm'));
    assert.ok(start >= 0, `the page has a section for zbk ${c.id}`);
    const rest = text.slice(start + 1);
    const next = rest.search(/^ {3}zbk |^[A-Z]/m);
    const section = rest.slice(0, next);
    for (const f of c.flags) assert.match(section, new RegExp(`--${f}\\b`), `zbk ${c.id}: --${f}`);
    if (/Exit codes/.test(c.description)) assert.match(section, /Exit status:/, `zbk ${c.id}: its exit codes`);
  }
  assert.match(text, /^ {7}130 +interrupted$/m, 'the exit-code table');
  t.diagnostic(`${commands.length} commands in ${text.split('\n').length} lines`);
});

test('zbk help <command> works, for topic commands too', async () => {
  const r = await runZbk(['help', 'restore', 'run'], env);
  assert.equal(r.code, 0, r.stderr);
  const flat = (s: string): string => s.replace(/\s+/g, ' ');
  const description = commands.find((c) => c.id === 'restore run')!.description;
  const firstParagraph = description.split('\n\n')[0]!;
  assert.ok(flat(r.stdout).includes(flat(firstParagraph)), `zbk help restore run prints its description:\n${r.stdout.slice(0, 600)}`);
  assert.match(r.stdout, /\$ zbk restore run DATASET --target/);

  const same = await runZbk(['restore', 'run', '--help'], env);
  assert.equal(same.code, 0);
  assert.equal(same.stdout, r.stdout, 'the same help as zbk restore run --help');

  const topic = await runZbk(['help', 'restore'], env);
  assert.equal(topic.code, 0, topic.stderr);
  for (const sub of ['restore plan', 'restore run', 'restore status']) assert.match(topic.stdout, new RegExp(sub));

  const missing = await runZbk(['help', 'nosuch'], env);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /not found/);
});
