/**
 * The zbk(1) man page in roff (man(7) macros), rendered from the commands'
 * own metadata (src/cli/command-model.ts): every command's usage, summary,
 * description, arguments, flags, examples and exit codes, and the global
 * exit-code table of the README. scripts/gen-man.mjs writes it to
 * dist/man/zbk.1 during `npm run build`.
 *
 * Plain ASCII out: every other character is a groff `\[uXXXX]` escape, so
 * `groff -man` renders it without preconv and `man -l` the same way.
 */
import type { CliModel, CommandModel, FlagModel } from './command-model.js';

export interface ExitStatusRow {
  code: string;
  meaning: string;
}

export interface ManOptions {
  /** YYYY-MM-DD for the page footer. */
  date: string;
  /** The global exit-code table (README.md, "Exit codes"). */
  exitStatus: ExitStatusRow[];
}

/** Text → roff text (not a request line): backslashes, hyphens as minus signs, non-ASCII as \[uXXXX]. */
export function roffText(s: string): string {
  let out = '';
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    if (ch === '\\') out += '\\e';
    else if (ch === '-') out += '\\-';
    else if (cp > 0x7e || (cp < 0x20 && ch !== '\n')) out += `\\[u${cp.toString(16).toUpperCase().padStart(4, '0')}]`;
    else out += ch;
  }
  return out;
}

/** Text with `code` and **bold** markdown spans as bold. */
function roffMarkdown(s: string): string {
  return s
    .split(/(`[^`]+`|\*\*[^*]+\*\*)/)
    .map((part) => {
      const m = /^`([^`]+)`$/.exec(part) ?? /^\*\*([^*]+)\*\*$/.exec(part);
      return m ? `\\fB${roffText(m[1]!)}\\fR` : roffText(part);
    })
    .join('');
}

/** A line of text that must not be read as a request (leading . or '). */
function line(s: string): string {
  return /^[.']/.test(s) ? `\\&${s}` : s;
}

/** A quoted macro argument. */
function arg(s: string): string {
  return `"${roffText(s).replace(/"/g, '\\(dq')}"`;
}

/**
 * Paragraphs (blank-line separated) as filled roff text. Within one, a line
 * starting with "- " is a bullet item, an indented line starts a new line.
 */
function paragraphs(text: string, first: string | null = '.PP', next = '.PP'): string[] {
  const out: string[] = [];
  const paras = text
    .trim()
    .split(/\n\s*\n/)
    .filter((p) => p.trim() !== '');
  paras.forEach((p, n) => {
    if (n > 0) out.push(next);
    else if (first !== null) out.push(first);
    let inList = false;
    let indented = false;
    for (const raw of p.split('\n')) {
      if (/^\s*- /.test(raw)) {
        if (indented) out.push('.RE');
        indented = false;
        out.push('.IP \\(bu 2', line(roffText(raw.replace(/^\s*- /, ''))));
        inList = true;
      } else if (/^\s+\S/.test(raw) && !inList) {
        out.push(...(indented ? ['.br'] : ['.RS 2']), line(roffText(raw.trim())));
        indented = true;
      } else {
        if (indented) out.push('.RE');
        indented = false;
        out.push(line(roffText(raw.trim())));
      }
    }
    if (indented) out.push('.RE');
    if (inList) out.push(next);
  });
  return out;
}

function flagTag(f: FlagModel): string {
  const names = [`\\fB\\-\\-${roffText(f.name)}\\fR`];
  if (f.char) names.unshift(`\\fB\\-${roffText(f.char)}\\fR`);
  if (f.allowNo) names.push(`\\fB\\-\\-no\\-${roffText(f.name)}\\fR`);
  let tag = names.join(', ');
  if (f.takesValue) tag += ` \\fI${roffText(f.helpValue)}\\fR`;
  return line(tag);
}

function flagNotes(f: FlagModel): string {
  const notes: string[] = [];
  if (f.required) notes.push('Required.');
  if (f.multiple) notes.push('May be given more than once.');
  if (f.options.length > 0 && f.helpValue !== f.options.join('|')) notes.push(`One of: ${f.options.join(', ')}.`);
  if (f.default !== undefined) notes.push(`Default: ${f.default}.`);
  return notes.join(' ');
}

function commandSection(bin: string, c: CommandModel): string[] {
  const out = [`.SS ${arg(`${bin} ${c.id}`)}`];
  out.push(line(roffText(c.summary)));
  out.push('.PP', line(`\\fBUsage:\\fR ${roffText(c.usage)}`));
  if (c.description.trim()) out.push(...paragraphs(c.description));
  if (c.args.length > 0) {
    out.push('.PP', '\\fBArguments:\\fR');
    for (const a of c.args) {
      out.push('.TP', line(`\\fI${roffText(a.name.toUpperCase())}${a.variadic ? '...' : ''}\\fR`));
      const notes = [a.required ? 'Required.' : '', a.options.length ? `One of: ${a.options.join(', ')}.` : ''].filter(Boolean).join(' ');
      out.push(line(roffText([a.description, notes].filter(Boolean).join(' '))));
    }
  }
  if (c.flags.length > 0) {
    out.push('.PP', '\\fBFlags:\\fR');
    for (const f of c.flags) {
      out.push('.TP', flagTag(f));
      const body = [f.description || f.summary, flagNotes(f)].filter(Boolean).join(' ');
      out.push(...paragraphs(body, null, '.IP'));
    }
  }
  if (c.examples.length > 0) {
    out.push('.PP', '\\fBExamples:\\fR', '.RS 4', '.PP', '.nf');
    c.examples.forEach((e, i) => {
      if (e.description) out.push(...(i > 0 ? ['.fi', '.PP'] : ['.fi']), line(roffText(e.description)), '.nf');
      out.push(line(roffText(`$ ${e.command}`)));
    });
    out.push('.fi', '.RE');
  }
  if (c.exitCodes) {
    out.push('.PP', line(`\\fBExit status:\\fR ${roffText(c.exitCodes.replace(/^Exit codes[^:]*:\s*/, ''))}`));
  }
  return out;
}

/** The rows of the README's "## Exit codes" table. */
export function exitCodesFromReadme(markdown: string): ExitStatusRow[] {
  const lines = markdown.split('\n');
  const start = lines.findIndex((l) => /^##\s+Exit codes\s*$/.test(l));
  if (start < 0) throw new Error('README.md has no "## Exit codes" section');
  const rows: ExitStatusRow[] = [];
  for (const l of lines.slice(start + 1)) {
    if (/^##\s/.test(l)) break;
    if (!l.startsWith('|')) {
      if (rows.length > 0) break;
      continue;
    }
    const cells = l
      .replace(/^\|/, '')
      .replace(/\|\s*$/, '')
      .split(/(?<!\\)\|/)
      .map((c) => c.trim().replace(/\\\|/g, '|'));
    if (cells.length < 2 || !/^\d+$/.test(cells[0]!)) continue;
    rows.push({ code: cells[0]!, meaning: cells.slice(1).join(' | ') });
  }
  if (rows.length === 0) throw new Error('README.md "## Exit codes" has no table rows');
  return rows;
}

export function renderMan(model: CliModel, opts: ManOptions): string {
  const { bin } = model;
  const BIN = bin.toUpperCase();
  const out: string[] = [
    `.\\" ${bin}(1), generated by scripts/gen-man.mjs from the commands of ${bin} ${model.version}; do not edit.`,
    `.TH ${BIN} 1 ${arg(opts.date)} ${arg(`${bin} ${model.version}`)} "User Commands"`,
    // No hyphenation (a flag name must not be split), ragged right.
    '.nh',
    '.ad l',
    '.SH NAME',
    line(`${roffText(bin)} \\- ${roffText(model.description.replace(/^./, (c) => c.toLowerCase()).replace(/\.$/, ''))}`),
    '.SH SYNOPSIS',
  ];
  model.commands.forEach((c, i) => {
    if (i > 0) out.push('.br');
    const rest = c.usage.slice(`${bin} ${c.id}`.length).trim();
    out.push(line(`\\fB${roffText(`${bin} ${c.id}`)}\\fR${rest ? ` ${roffText(rest)}` : ''}`));
  });
  out.push(
    '.SH DESCRIPTION',
    line(`${roffText(bin)} makes ${roffText(model.description.replace(/^./, (c) => c.toLowerCase()).replace(/\.?$/, '.'))}`),
    '.PP',
    line(
      roffText(
        `Most commands take --json (the result as JSON on stdout, nothing else on stdout; an error as {"error": {"code", "message", "exitCode"}}) and --config FILE. "${bin} help COMMAND" and "${bin} COMMAND --help" print the help of a command or topic, as this page does.`,
      ),
    ),
  );
  if (model.topics.length > 0) {
    out.push('.PP', 'Topics group commands:');
    for (const t of model.topics) out.push('.TP', line(`\\fB${roffText(`${bin} ${t.name}`)}\\fR`), line(roffText(t.description)));
  }
  out.push('.SH COMMANDS');
  for (const c of model.commands) out.push(...commandSection(bin, c));
  out.push('.SH "EXIT STATUS"');
  for (const r of opts.exitStatus) out.push('.TP', line(`\\fB${roffText(r.code)}\\fR`), line(roffMarkdown(r.meaning)));
  out.push(
    '.PP',
    line(roffText(`${bin} check uses the monitoring-plugins codes instead: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN. Each command's section above lists the codes it returns.`)),
    '.SH ENVIRONMENT',
    '.TP',
    '.B ZBK_CONFIG',
    line(roffText('The config file, when --config is not given.')),
    '.TP',
    '.B ZBK_PASSPHRASE_FILE',
    line(roffText('A file whose first line is the passphrase (wins over passphrase_file in the config).')),
    '.TP',
    '.B ZBK_RETRY',
    line(roffText('"quick" or "patient": how long an unreachable store is retried (default: quick at a terminal, patient under timers, cron and CI).')),
    '.TP',
    '.B ZBK_DEBUG',
    line(roffText('When set, an unexpected error prints its stack trace.')),
    '.TP',
    line(`\\fBAWS_PROFILE\\fR, \\fBAWS_ACCESS_KEY_ID\\fR, \\fBAWS_SECRET_ACCESS_KEY\\fR, ...`),
    line(roffText('The standard AWS credential chain (environment, profile, SSO, instance role).')),
    '.SH FILES',
    '.TP',
    '.I /etc/zbk/config.toml',
    line(roffText('The config file of root (mode 0600).')),
    '.TP',
    '.I ~/.config/zbk/config.toml',
    line(roffText('The config file of other users.')),
    '.TP',
    '.I /var/lib/zbk/<repository id>/',
    line(roffText('The local state of root: the manifest, its lock, push status and restore staging (other users: $XDG_STATE_HOME/zbk/<repository id>/; state_dir in the config overrides).')),
    '.SH "SHELL COMPLETION"',
    line(roffText(`"${bin} completion bash|zsh|fish" prints a self-contained completion script (no network, nothing runs at TAB time); see "${bin} completion" above for where to put it. Print it again after upgrading ${bin}.`)),
    '.SH "SEE ALSO"',
    '.BR zfs (8),',
    '.BR btrfs (8),',
    line(roffText('and the documentation shipped with zbk: README.md, docs/OPERATIONS.md, docs/FORMAT.md, docs/RECOVERY.md, docs/COSTS.md.')),
    '',
  );
  return out.join('\n');
}
