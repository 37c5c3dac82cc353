/**
 * The commands of the CLI as plain data, read from oclif's loaded config
 * (the same cached command metadata `zbk help` renders): ids, summaries,
 * descriptions, flags, arguments, examples and each command's "Exit codes:"
 * paragraph. `zbk completion` and scripts/gen-man.mjs render from this, so
 * the completion scripts and the man page can never describe other commands
 * than the ones that run.
 */
import type { Command, Interfaces } from '@oclif/core';

/** How a flag's value is completed. */
export type ValueKind = 'none' | 'options' | 'file' | 'dir' | 'text';

export interface FlagModel {
  name: string;
  char?: string;
  /** First sentence-ish line: for completion menus. */
  summary: string;
  /** The whole help text of the flag. */
  description: string;
  takesValue: boolean;
  valueKind: ValueKind;
  /** The placeholder shown in the help (`<value>`, `RATE`, `DIR`). */
  helpValue: string;
  options: string[];
  multiple: boolean;
  allowNo: boolean;
  required: boolean;
  default?: string;
  group?: string;
}

export interface ArgModel {
  name: string;
  description: string;
  required: boolean;
  options: string[];
  /** More than one may be given (the command is not strict). */
  variadic: boolean;
}

export interface ExampleModel {
  command: string;
  description?: string;
}

export interface CommandModel {
  /** Space-separated, as typed: `restore run`. */
  id: string;
  summary: string;
  /** Without the "Exit codes:" paragraph. */
  description: string;
  /** The "Exit codes: …" paragraph of the description, if it has one. */
  exitCodes?: string;
  usage: string;
  flags: FlagModel[];
  args: ArgModel[];
  examples: ExampleModel[];
}

export interface TopicModel {
  name: string;
  description: string;
}

export interface CliModel {
  bin: string;
  version: string;
  description: string;
  commands: CommandModel[];
  /** Every command path that has subcommands (`restore`, `cost`), sorted. */
  topics: TopicModel[];
}

/** The first line, cut at its first sentence end (outside parentheses) when it is long. */
export function firstSentence(text: string, max = 100): string {
  const line = (text.split('\n')[0] ?? '').trim();
  if (line.length <= max) return line;
  let depth = 0;
  for (let i = 0; i < Math.min(line.length, max); i++) {
    const ch = line[i];
    if (ch === '(' || ch === '[') depth++;
    else if ((ch === ')' || ch === ']') && depth > 0) depth--;
    else if (ch === '.' && depth === 0 && line[i + 1] === ' ' && i >= 10) return line.slice(0, i + 1);
  }
  return `${line.slice(0, max - 1).replace(/\s+\S*$/, '')}…`;
}

function render(text: string, bin: string, id: string): string {
  return text.replace(/<%=\s*config\.bin\s*%>/g, bin).replace(/<%=\s*command\.id\s*%>/g, id);
}

function valueKind(name: string, f: Command.Flag.Cached): ValueKind {
  if (f.type === 'boolean') return 'none';
  if (f.options && f.options.length > 0) return 'options';
  const helpValue = typeof f.helpValue === 'string' ? f.helpValue : '';
  if (helpValue === 'DIR' || /(^|-)dir$/.test(name)) return 'dir';
  if (helpValue === 'FILE' || name === 'config' || /(^|-)file$/.test(name)) return 'file';
  return 'text';
}

function flagModel(name: string, f: Command.Flag.Cached, bin: string, id: string): FlagModel {
  const description = render(f.description ?? f.summary ?? '', bin, id).trim();
  const isOption = f.type === 'option';
  const options = isOption && f.options ? [...f.options] : [];
  const helpValue = isOption
    ? typeof f.helpValue === 'string'
      ? f.helpValue
      : options.length > 0
        ? options.join('|')
        : '<value>'
    : '';
  const def = (f as { default?: unknown }).default;
  const m: FlagModel = {
    name,
    summary: firstSentence(render(f.summary ?? f.description ?? '', bin, id)),
    description,
    takesValue: isOption,
    valueKind: valueKind(name, f),
    helpValue,
    options,
    multiple: isOption && f.multiple === true,
    allowNo: f.type === 'boolean' && f.allowNo === true,
    required: f.required === true,
  };
  if (f.char) m.char = f.char;
  if (typeof def === 'string' || typeof def === 'number' || (typeof def === 'boolean' && def)) m.default = String(def);
  if (f.helpGroup) m.group = f.helpGroup;
  return m;
}

/** The usage line `zbk help` shows: `zbk restore run DATASET --target <value> [flags]`. */
function usageOf(bin: string, id: string, args: ArgModel[], flags: FlagModel[]): string {
  const parts = [bin, id];
  for (const a of args) {
    const word = a.name.toUpperCase() + (a.variadic ? '...' : '');
    parts.push(a.required ? word : `[${word}]`);
  }
  for (const f of flags) if (f.required) parts.push(`--${f.name} ${f.helpValue}`);
  if (flags.some((f) => !f.required)) parts.push('[flags]');
  return parts.join(' ');
}

function commandModel(c: Command.Loadable, bin: string, sep: string): CommandModel {
  const id = c.id.split(':').join(sep);
  const full = render(c.description ?? '', bin, id).trim();
  const paragraphs = full.split(/\n\s*\n/);
  const exitIdx = paragraphs.findIndex((p) => /^Exit codes\b/.test(p.trim()));
  const exitCodes = exitIdx >= 0 ? paragraphs[exitIdx]!.trim() : undefined;
  const description = paragraphs.filter((_, i) => i !== exitIdx).join('\n\n');
  const flags = Object.entries(c.flags ?? {})
    .filter(([, f]) => !f.hidden)
    .map(([name, f]) => flagModel(name, f, bin, id))
    .sort((a, b) => Number(a.group === 'GLOBAL') - Number(b.group === 'GLOBAL') || a.name.localeCompare(b.name));
  const argEntries = Object.entries(c.args ?? {}).filter(([, a]) => !a.hidden);
  const args = argEntries.map(([name, a], i): ArgModel => ({
    name,
    description: render(a.description ?? '', bin, id),
    required: a.required === true,
    options: a.options ? a.options.map(String) : [],
    variadic: (c.strict === false && i === argEntries.length - 1) || a.multiple === true,
  }));
  const examples = (c.examples ?? []).map((e): ExampleModel => {
    const cmd = typeof e === 'string' ? e : e.command;
    const ex: ExampleModel = { command: render(cmd, bin, id).replace(/^\$\s*/, '') };
    if (typeof e !== 'string' && e.description) ex.description = render(e.description, bin, id);
    return ex;
  });
  const summary = render(c.summary ?? firstSentence(full), bin, id);
  const m: CommandModel = {
    id,
    summary,
    description: c.summary ? description : paragraphs.filter((_, i) => i !== exitIdx && i !== 0).join('\n\n'),
    usage: usageOf(bin, id, args, flags),
    flags,
    args,
    examples,
  };
  if (exitCodes) m.exitCodes = exitCodes;
  return m;
}

/** The visible commands and topics of a loaded oclif config. */
export function cliModel(config: Interfaces.Config): CliModel {
  const sep = config.topicSeparator === ':' ? ':' : ' ';
  const bin = config.bin;
  const commands = config.commands
    .filter((c) => !c.hidden)
    .map((c) => commandModel(c, bin, sep))
    .sort((a, b) => a.id.localeCompare(b.id));
  const described = new Map(config.topics.map((t) => [t.name.split(':').join(sep), t]));
  const topicNames = new Set<string>();
  for (const c of commands) {
    const words = c.id.split(sep);
    for (let i = 1; i < words.length; i++) topicNames.add(words.slice(0, i).join(sep));
  }
  const topics = [...topicNames]
    .filter((n) => !described.get(n)?.hidden)
    .sort()
    .map((name) => ({
      name,
      description: described.get(name)?.description ?? commands.find((c) => c.id === name)?.summary ?? '',
    }));
  return {
    bin,
    version: config.version,
    description: String(config.pjson.description ?? ''),
    commands,
    topics,
  };
}
