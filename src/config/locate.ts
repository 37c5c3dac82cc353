/**
 * Where a key is in a TOML source: smol-toml parses values but keeps no
 * positions, so config errors find the line of a key by scanning the text.
 *
 * The scanner runs on text that already parsed, so it only has to follow the
 * structure: table headers (`[a.b]`, `[[dataset]]`, counted per array so the
 * n-th `[[dataset]]` is index n-1), dotted and quoted keys, inline tables and
 * arrays (also `dataset = [{ ... }, { ... }]`), multi-line strings. It never
 * throws: on anything it does not follow it stops, and the lines found so far
 * still answer.
 */

export type KeyPath = readonly (string | number)[];

const pathKey = (p: KeyPath): string => JSON.stringify(p.map(String));

/** 1-based line of every key, table header and array-of-tables element in a TOML source (first occurrence). */
export class KeyLines {
  private constructor(private readonly lines: Map<string, number>) {}

  static scan(source: string): KeyLines {
    const lines = new Map<string, number>();
    try {
      new Scanner(source, lines).document();
    } catch {
      // Keep what was found: a line for some keys is better than none.
    }
    return new KeyLines(lines);
  }

  /** The line of `path`, else of its nearest ancestor that has one (an array element inside a key's value, say). */
  line(path: KeyPath): number | undefined {
    for (let n = path.length; n > 0; n--) {
      const l = this.lines.get(pathKey(path.slice(0, n)));
      if (l !== undefined) return l;
    }
    return undefined;
  }
}

const BARE = /[A-Za-z0-9_-]/;

class Scanner {
  private i = 0;
  private readonly newlines: number[] = [];
  /** Elements seen so far of each array of tables, by its resolved path. */
  private readonly arrays = new Map<string, number>();

  constructor(
    private readonly s: string,
    private readonly out: Map<string, number>,
  ) {
    for (let j = 0; j < s.length; j++) if (s[j] === '\n') this.newlines.push(j);
  }

  private lineOf(pos: number): number {
    let lo = 0;
    let hi = this.newlines.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.newlines[mid]! < pos) lo = mid + 1;
      else hi = mid;
    }
    return lo + 1;
  }

  private record(path: KeyPath, pos: number): void {
    const line = this.lineOf(pos);
    for (let n = 1; n <= path.length; n++) {
      const k = pathKey(path.slice(0, n));
      if (!this.out.has(k)) this.out.set(k, line);
    }
  }

  private ws(): void {
    while (this.s[this.i] === ' ' || this.s[this.i] === '\t') this.i++;
  }

  /** Whitespace, comments and newlines. */
  private wsnl(): void {
    for (;;) {
      this.ws();
      if (this.s[this.i] === '#') while (this.i < this.s.length && this.s[this.i] !== '\n') this.i++;
      if (this.s[this.i] === '\n' || this.s[this.i] === '\r') {
        this.i++;
        continue;
      }
      return;
    }
  }

  document(): void {
    let table: KeyPath = [];
    while (this.i < this.s.length) {
      this.wsnl();
      if (this.i >= this.s.length) return;
      const start = this.i;
      if (this.s.startsWith('[[', this.i)) {
        this.i += 2;
        this.ws();
        table = this.resolve(this.key(), true);
        this.record(table, start);
        this.ws();
        this.i += 2;
      } else if (this.s[this.i] === '[') {
        this.i++;
        this.ws();
        table = this.resolve(this.key(), false);
        this.record(table, start);
        this.ws();
        this.i++;
      } else {
        const k = this.key();
        this.record([...table, ...k], start);
        this.ws();
        if (this.s[this.i] !== '=') return;
        this.i++;
        this.ws();
        this.value([...table, ...k]);
      }
      this.ws();
      if (this.s[this.i] === '#') while (this.i < this.s.length && this.s[this.i] !== '\n') this.i++;
      if (this.i === start) return;
    }
  }

  /** A header's path with the current index of every array of tables it passes through; a new element for `[[...]]`. */
  private resolve(key: string[], isArray: boolean): KeyPath {
    const out: (string | number)[] = [];
    key.forEach((seg, j) => {
      out.push(seg);
      const k = pathKey(out);
      if (isArray && j === key.length - 1) {
        const n = this.arrays.get(k) ?? 0;
        this.arrays.set(k, n + 1);
        out.push(n);
      } else {
        const n = this.arrays.get(k);
        if (n !== undefined) out.push(n - 1);
      }
    });
    return out;
  }

  /** A (dotted) key: bare, "basic" or 'literal' parts. */
  private key(): string[] {
    const parts = [this.simpleKey()];
    this.ws();
    while (this.s[this.i] === '.') {
      this.i++;
      this.ws();
      parts.push(this.simpleKey());
      this.ws();
    }
    return parts;
  }

  private simpleKey(): string {
    const c = this.s[this.i];
    if (c === '"') {
      const start = this.i;
      this.i++;
      while (this.i < this.s.length && this.s[this.i] !== '"') this.i += this.s[this.i] === '\\' ? 2 : 1;
      this.i++;
      const text = this.s.slice(start, this.i);
      try {
        return JSON.parse(text) as string;
      } catch {
        return text.slice(1, -1);
      }
    }
    if (c === "'") {
      const end = this.s.indexOf("'", this.i + 1);
      const text = this.s.slice(this.i + 1, end);
      this.i = end + 1;
      return text;
    }
    const start = this.i;
    while (this.i < this.s.length && BARE.test(this.s[this.i]!)) this.i++;
    if (this.i === start) throw new Error('not a key');
    return this.s.slice(start, this.i);
  }

  private value(path: KeyPath): void {
    const c = this.s[this.i];
    if (c === '"' || c === "'") return this.string();
    if (c === '[') {
      this.i++;
      for (let n = 0; ; n++) {
        this.wsnl();
        if (this.s[this.i] === ']' || this.i >= this.s.length) break;
        const at = this.i;
        this.record([...path, n], at);
        this.value([...path, n]);
        this.wsnl();
        if (this.s[this.i] === ',') this.i++;
        if (this.i === at) throw new Error('stuck in an array');
      }
      this.i++;
      return;
    }
    if (c === '{') {
      this.i++;
      for (;;) {
        this.ws();
        if (this.s[this.i] === '}' || this.i >= this.s.length) break;
        const at = this.i;
        const k = this.key();
        this.record([...path, ...k], at);
        this.ws();
        this.i++; // '='
        this.ws();
        this.value([...path, ...k]);
        this.ws();
        if (this.s[this.i] === ',') this.i++;
      }
      this.i++;
      return;
    }
    // Numbers, booleans, dates: up to the next separator.
    while (this.i < this.s.length && !/[,\]}\n\r#]/.test(this.s[this.i]!)) this.i++;
  }

  private string(): void {
    const q = this.s[this.i]!;
    if (this.s.startsWith(q.repeat(3), this.i)) {
      this.i += 3;
      for (;;) {
        if (this.i >= this.s.length) return;
        if (q === '"' && this.s[this.i] === '\\') {
          this.i += 2;
          continue;
        }
        if (this.s.startsWith(q.repeat(3), this.i)) {
          this.i += 3;
          // Up to two more quotes belong to the string.
          while (this.s[this.i] === q) this.i++;
          return;
        }
        this.i++;
      }
    }
    this.i++;
    while (this.i < this.s.length && this.s[this.i] !== q) this.i += q === '"' && this.s[this.i] === '\\' ? 2 : 1;
    this.i++;
  }
}
