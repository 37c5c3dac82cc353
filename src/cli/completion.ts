/**
 * Shell completion scripts for bash, zsh and fish, rendered from the
 * commands' own metadata (src/cli/command-model.ts) by `zbk completion
 * <shell>`. A script is self-contained: the command words, flags and flag
 * values are written into it, so pressing TAB runs no zbk process, reads no
 * file and needs no network. It describes the zbk that printed it: print it
 * again after an upgrade.
 *
 * Every script completes the same way:
 * - the words typed after `zbk` that spell a command path (`restore`,
 *   `restore run`) select the command; the next word offers its
 *   subcommands (a topic) and its arguments' fixed values;
 * - a word starting with `-` offers the command's flags (with `--help`);
 * - after a flag that takes a value: its choices (`--kdf`), directories
 *   (`--textfile DIR`), file names (`--config`), or nothing (`--months`);
 * - `zbk help <TAB>` offers command words only;
 * - dataset arguments complete file names (a btrfs dataset is a path).
 */
import type { ArgModel, CliModel, CommandModel, FlagModel } from './command-model.js';

export const SHELLS = ['bash', 'zsh', 'fish'] as const;
export type Shell = (typeof SHELLS)[number];

const HELP_FLAG: FlagModel = {
  name: 'help',
  summary: 'Show the help of this command.',
  description: 'Show the help of this command.',
  takesValue: false,
  valueKind: 'none',
  helpValue: '',
  options: [],
  multiple: false,
  allowNo: false,
  required: false,
};

/** A string as one single-quoted POSIX shell word (bash, zsh). */
function sq(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** A string as one single-quoted fish word. */
function fq(s: string): string {
  return `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

/** One line, at most `max` characters, for menus. */
function short(text: string, max = 80): string {
  const line = text.replace(/\s+/g, ' ').trim();
  return line.length <= max ? line : `${line.slice(0, max - 1).replace(/\s+\S*$/, '')}…`;
}

interface Tree {
  /** Every command path (commands and topics), e.g. `restore`, `restore run`. */
  paths: string[];
  /** The next words after a path ('' is the root), with their descriptions. */
  children: Map<string, { word: string; description: string }[]>;
  commands: Map<string, CommandModel>;
}

function tree(model: CliModel): Tree {
  const commands = new Map(model.commands.map((c) => [c.id, c]));
  const topics = new Map(model.topics.map((t) => [t.name, t]));
  const paths = [...new Set([...commands.keys(), ...topics.keys()])].sort();
  const children = new Map<string, { word: string; description: string }[]>();
  for (const p of paths) {
    const cut = p.lastIndexOf(' ');
    const parent = cut < 0 ? '' : p.slice(0, cut);
    const word = cut < 0 ? p : p.slice(cut + 1);
    const description = short(commands.get(p)?.summary ?? topics.get(p)?.description ?? '');
    const list = children.get(parent) ?? [];
    list.push({ word, description });
    children.set(parent, list);
  }
  return { paths, children, commands };
}

function flagsOf(c: CommandModel): FlagModel[] {
  return [...c.flags, HELP_FLAG];
}

/** The flag spellings: `--name`, `--no-name`, `-c`. */
function spellings(f: FlagModel): string[] {
  const out = [`--${f.name}`];
  if (f.allowNo) out.push(`--no-${f.name}`);
  if (f.char) out.push(`-${f.char}`);
  return out;
}

function argWords(c: CommandModel): string[] {
  return c.args.flatMap((a) => a.options);
}

function header(comment: string, model: CliModel, shell: Shell, install: [string, string][]): string {
  const width = Math.max(...install.map(([label]) => label.length)) + 1;
  return [
    `${comment} ${shell} completion for ${model.bin} ${model.version}, printed by "${model.bin} completion ${shell}".`,
    `${comment} It lists the commands and flags of this version: print it again after upgrading ${model.bin}.`,
    `${comment} Install (then start a new shell):`,
    ...install.map(([label, cmd]) => `${comment}   ${`${label}:`.padEnd(width)} ${cmd}`),
    '',
  ].join('\n');
}

export function bashScript(model: CliModel): string {
  const t = tree(model);
  const bin = model.bin;
  const fn = `_${bin.replace(/[^A-Za-z0-9_]/g, '_')}`;
  const out: string[] = [
    header('#', model, 'bash', [
      ['every user', `${bin} completion bash > /etc/bash_completion.d/${bin}`],
      ['you (bash-completion 2)', `${bin} completion bash > ~/.local/share/bash-completion/completions/${bin}`],
      ['without bash-completion', `echo 'source <(${bin} completion bash)' >> ~/.bashrc`],
    ]),
  ];
  out.push(`${fn}_is_path() {`, '  case "$1" in');
  out.push(`    ${t.paths.map(sq).join('|')}) return 0 ;;`);
  out.push('  esac', '  return 1', '}', '');

  out.push(`# The words that can follow a command path ('' is ${bin} itself).`);
  out.push(`${fn}_subwords() {`, '  case "$1" in');
  for (const [parent, kids] of t.children) out.push(`    ${sq(parent)}) REPLY=${sq(kids.map((k) => k.word).join(' '))} ;;`);
  out.push("    *) REPLY='' ;;", '  esac', '}', '');

  out.push(`${fn}_flags() {`, '  case "$1" in');
  for (const c of t.commands.values()) out.push(`    ${sq(c.id)}) REPLY=${sq(flagsOf(c).flatMap(spellings).join(' '))} ;;`);
  out.push("    '') REPLY='--help --version' ;;", "    *) REPLY='--help' ;;", '  esac', '}', '');

  out.push('# Fixed values of positional arguments.', `${fn}_argwords() {`, '  case "$1" in');
  for (const c of t.commands.values()) {
    const words = argWords(c);
    if (words.length > 0) out.push(`    ${sq(c.id)}) REPLY=${sq(words.join(' '))} ;;`);
  }
  out.push("    *) REPLY='' ;;", '  esac', '}', '');

  out.push(
    '# "$1 $2" (command, flag) takes a value: REPLY is its choices, or @file, @dir, @text. Else returns 1.',
    `${fn}_value() {`,
    '  case "$1 $2" in',
  );
  for (const c of t.commands.values()) {
    for (const f of c.flags) {
      if (!f.takesValue) continue;
      const value = f.valueKind === 'options' ? f.options.join(' ') : `@${f.valueKind}`;
      const keys = spellings(f).map((s) => sq(`${c.id} ${s}`));
      out.push(`    ${keys.join('|')}) REPLY=${sq(value)} ;;`);
    }
  }
  out.push('    *) return 1 ;;', '  esac', '}', '');

  out.push(
    `${fn}() {`,
    '  local cur="${COMP_WORDS[COMP_CWORD]}" prev="" path="" cand flag REPLY words=""',
    '  local -i i=1 help=0 extra=0',
    '  COMPREPLY=()',
    '  (( COMP_CWORD > 0 )) && prev="${COMP_WORDS[COMP_CWORD-1]}"',
    `  if [[ "\${COMP_WORDS[1]-}" == help ]] && (( COMP_CWORD > 1 )); then help=1; i=2; fi`,
    '  # The longest command path the words before the cursor spell.',
    '  for (( ; i < COMP_CWORD; i++ )); do',
    '    cand="${path:+$path }${COMP_WORDS[i]}"',
    `    if ${fn}_is_path "$cand"; then path="$cand"; else extra=1; break; fi`,
    '  done',
    '  if (( help )); then',
    `    (( extra )) || { ${fn}_subwords "$path"; COMPREPLY=($(compgen -W "$REPLY" -- "$cur")); }`,
    '    return 0',
    '  fi',
    '  # The value of a flag: "--flag value", or "--flag=value" (bash splits words at "=").',
    '  flag="$prev"',
    '  [[ "$prev" == = ]] && (( COMP_CWORD >= 2 )) && flag="${COMP_WORDS[COMP_CWORD-2]}"',
    '  if [[ "$flag" == -* && -n "$path" ]] && ' + `${fn}_value "$path" "$flag"; then`,
    '    case "$REPLY" in',
    '      @dir) compopt -o filenames 2>/dev/null; COMPREPLY=($(compgen -d -- "$cur")) ;;',
    "      @file) ;; # readline's file names (complete -o default)",
    '      @text) compopt +o default 2>/dev/null ;;',
    '      *) COMPREPLY=($(compgen -W "$REPLY" -- "$cur")) ;;',
    '    esac',
    '    return 0',
    '  fi',
    '  if [[ "$cur" == -* ]]; then',
    `    ${fn}_flags "$path"; COMPREPLY=($(compgen -W "$REPLY" -- "$cur"))`,
    '    return 0',
    '  fi',
    `  (( extra )) || { ${fn}_subwords "$path"; words="$REPLY"; }`,
    `  [[ -n "$path" ]] && ${fn}_argwords "$path" && words="$words $REPLY"`,
    '  COMPREPLY=($(compgen -W "$words" -- "$cur"))',
    '  return 0',
    '}',
    '',
    `complete -o default -F ${fn} ${bin}`,
    '',
  );
  return out.join('\n');
}

/** A description inside an _arguments `[...]` or a _describe item. */
function zdesc(s: string): string {
  return short(s).replace(/\\/g, '\\\\').replace(/([[\]:])/g, '\\$1');
}

function zshFlagSpecs(f: FlagModel): string[] {
  const desc = `[${zdesc(f.summary)}]`;
  const star = f.multiple ? '*' : '';
  const action =
    f.valueKind === 'options'
      ? `:${f.name}:(${f.options.join(' ')})`
      : f.valueKind === 'file'
        ? `:${f.name}:_files`
        : f.valueKind === 'dir'
          ? `:${f.name}:_files -/`
          : f.valueKind === 'text'
            ? `:${(f.helpValue || f.name).replace(/[<>:]/g, '')}: `
            : '';
  return spellings(f).map((s) => {
    if (s.startsWith('--no-')) return `${s}[${zdesc(`Not: ${f.summary}`)}]`;
    return `${star}${s}${f.takesValue ? (s.startsWith('--') ? '=' : '+') : ''}${desc}${action}`;
  });
}

function zshArgSpec(a: ArgModel, index: number): string {
  const action = a.options.length > 0 ? `(${a.options.join(' ')})` : '_files';
  const label = a.name.replace(/:/g, '');
  if (a.variadic) return `*:${label}:${action}`;
  return `${index + 1}:${a.required ? '' : ':'}${label}:${action}`;
}

export function zshScript(model: CliModel): string {
  const t = tree(model);
  const bin = model.bin;
  const fn = `_${bin.replace(/[^A-Za-z0-9_]/g, '_')}`;
  const out: string[] = [
    `#compdef ${bin}`,
    header('#', model, 'zsh', [
      ['every user (or any directory in $fpath)', `${bin} completion zsh > /usr/local/share/zsh/site-functions/_${bin}`],
      ['or, after compinit in ~/.zshrc', `source <(${bin} completion zsh)`],
    ]),
  ];
  out.push(`${fn}_is_path() {`, '  case "$1" in');
  out.push(`    (${t.paths.map(sq).join('|')}) return 0 ;;`);
  out.push('  esac', '  return 1', '}', '');

  out.push(`# The words that can follow a command path ('' is ${bin} itself), for _describe.`, `${fn}_subcommands() {`, '  case "$1" in');
  for (const [parent, kids] of t.children) {
    out.push(`    (${sq(parent)}) reply=(${kids.map((k) => sq(`${k.word.replace(/:/g, '\\:')}:${k.description}`)).join(' ')}) ;;`);
  }
  out.push('    (*) reply=() ;;', '  esac', '}', '');

  out.push('# The _arguments specs of a command.', `${fn}_specs() {`, '  case "$1" in');
  for (const c of t.commands.values()) {
    const specs = [...flagsOf(c).flatMap(zshFlagSpecs), ...c.args.map(zshArgSpec)];
    out.push(`    (${sq(c.id)}) reply=(`, ...specs.map((s) => `      ${sq(s)}`), '    ) ;;');
  }
  out.push(`    ('') reply=('--help[Show the help of ${bin}.]' '--version[Show the version of ${bin}.]') ;;`);
  out.push('    (*) reply=() ;;', '  esac', '}', '');

  out.push(
    `${fn}() {`,
    '  local -a reply',
    '  local cmd="" cand',
    '  integer i=2 help=0 extra=0 ret=1',
    '  if [[ "${words[2]}" == help ]] && (( CURRENT > 2 )); then help=1; i=3; fi',
    '  # The longest command path the words before the cursor spell.',
    '  while (( i < CURRENT )); do',
    '    cand="${cmd:+$cmd }${words[i]}"',
    `    if ${fn}_is_path "$cand"; then cmd="$cand"; (( i++ )); else extra=1; break; fi`,
    '  done',
    '  if (( ! extra )) && [[ "${words[CURRENT]}" != -* ]]; then',
    `    ${fn}_subcommands "$cmd"`,
    `    (( \${#reply} )) && _describe -t commands '${bin} command' reply && ret=0`,
    '  fi',
    '  (( help )) && return ret',
    '  [[ -z "$cmd" && "${words[CURRENT]}" != -* ]] && return ret',
    `  ${fn}_specs "$cmd"`,
    '  (( ${#reply} )) || return ret',
    "  # _arguments sees the command's own words only.",
    '  words=("${words[1]}" "${(@)words[i,-1]}")',
    '  (( CURRENT = CURRENT - i + 2 ))',
    '  _arguments -s -S "${reply[@]}" && ret=0',
    '  return ret',
    '}',
    '',
    `if [[ "\${funcstack[1]}" == ${fn} ]]; then`,
    `  ${fn} "$@"`,
    'else',
    `  compdef ${fn} ${bin}`,
    'fi',
    '',
  );
  return out.join('\n');
}

export function fishScript(model: CliModel): string {
  const t = tree(model);
  const bin = model.bin;
  const p = `__${bin.replace(/[^A-Za-z0-9_]/g, '_')}`;
  const out: string[] = [
    header('#', model, 'fish', [
      ['you', `${bin} completion fish > ~/.config/fish/completions/${bin}.fish`],
      ['every user', `${bin} completion fish > /etc/fish/completions/${bin}.fish`],
    ]),
  ];
  out.push(`set -g ${p}_paths ${t.paths.map(fq).join(' ')}`, '');
  out.push(
    '# Sets the command path the tokens before the cursor spell, whether more words follow it, and help mode.',
    `function ${p}_parse`,
    '    set -l tokens (commandline -opc)',
    `    set -g ${p}_path ''`,
    `    set -g ${p}_extra 0`,
    `    set -g ${p}_help 0`,
    '    set -l i 2',
    '    if test (count $tokens) -ge 2; and test "$tokens[2]" = help',
    `        set -g ${p}_help 1`,
    '        set i 3',
    '    end',
    '    while test $i -le (count $tokens)',
    '        set -l cand $tokens[$i]',
    `        test -n "$${p}_path"; and set cand "$${p}_path $tokens[$i]"`,
    `        if contains -- "$cand" $${p}_paths`,
    `            set -g ${p}_path $cand`,
    '        else',
    `            set -g ${p}_extra 1`,
    '            break',
    '        end',
    '        set i (math $i + 1)',
    '    end',
    'end',
    '',
    '# True where the subcommands of command path $argv[1] complete.',
    `function ${p}_at`,
    `    ${p}_parse`,
    `    test "$${p}_path" = "$argv[1]"; and test $${p}_extra = 0`,
    'end',
    '',
    '# True where the flags and arguments of command $argv[1] complete.',
    `function ${p}_in`,
    `    ${p}_parse`,
    `    test "$${p}_path" = "$argv[1]"; and test $${p}_help = 0`,
    'end',
    '',
    `complete -c ${bin} -f`,
    `complete -c ${bin} -n ${fq(`${p}_in ''`)} -l help -d ${fq(`Show the help of ${bin}.`)}`,
    `complete -c ${bin} -n ${fq(`${p}_in ''`)} -l version -d ${fq(`Show the version of ${bin}.`)}`,
  );
  for (const [parent, kids] of t.children) {
    for (const k of kids) out.push(`complete -c ${bin} -n ${fq(`${p}_at ${fq(parent)}`)} -a ${fq(k.word)} -d ${fq(k.description)}`);
  }
  for (const c of t.commands.values()) {
    const cond = `-n ${fq(`${p}_in ${fq(c.id)}`)}`;
    for (const f of flagsOf(c)) {
      let opts = `-l ${f.name}`;
      if (f.char) opts += ` -s ${f.char}`;
      if (f.takesValue) {
        if (f.valueKind === 'options') opts += ` -x -a ${fq(f.options.join(' '))}`;
        else if (f.valueKind === 'file' || f.valueKind === 'dir') opts += ' -r -F';
        else opts += ' -x';
      }
      out.push(`complete -c ${bin} ${cond} ${opts} -d ${fq(short(f.summary))}`);
      if (f.allowNo) out.push(`complete -c ${bin} ${cond} -l no-${f.name} -d ${fq(short(`Not: ${f.summary}`))}`);
    }
    const words = argWords(c);
    if (words.length > 0) out.push(`complete -c ${bin} ${cond} -a ${fq(words.join(' '))}`);
    else if (c.args.length > 0) out.push(`complete -c ${bin} ${cond} -F`);
  }
  out.push('');
  return out.join('\n');
}

export function completionScript(shell: Shell, model: CliModel): string {
  switch (shell) {
    case 'bash':
      return bashScript(model);
    case 'zsh':
      return zshScript(model);
    case 'fish':
      return fishScript(model);
  }
}
