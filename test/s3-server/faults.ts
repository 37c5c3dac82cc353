/** Fault injection: rules matched per request by operation. */
import type { S3Operation } from './operations.js';

export type FaultKind = 'internal-error' | 'slow-down' | 'reset' | 'latency' | 'access-denied';

/**
 * One fault rule. A rule matches requests of `operation` (all operations when
 * absent). With `sequence`, the n-th matching request gets `sequence[n]`
 * (null = pass; past the end = pass). Otherwise `kind` is injected with
 * `probability` (default 1). `times` caps the number of injections.
 * `latencyMs` is the delay for 'latency' (default 200 ms of real time).
 */
export interface FaultRule {
  operation?: S3Operation | S3Operation[];
  probability?: number;
  sequence?: (FaultKind | null)[];
  kind?: FaultKind;
  latencyMs?: number;
  times?: number;
}

interface ActiveRule {
  rule: FaultRule;
  seen: number;
  injected: number;
}

/** A decided fault for one request. */
export interface Fault {
  kind: FaultKind;
  latencyMs: number;
}

export class FaultInjector {
  private rules: ActiveRule[] = [];
  constructor(private readonly random: () => number = Math.random) {}

  add(rule: FaultRule): void {
    if (rule.sequence === undefined && rule.kind === undefined) throw new Error('FaultRule needs kind or sequence');
    this.rules.push({ rule, seen: 0, injected: 0 });
  }

  clear(): void {
    this.rules = [];
  }

  /**
   * Decide the faults for one request, in rule order. Latency faults are
   * cumulative and may precede one terminal fault.
   */
  decide(op: S3Operation): Fault[] {
    const out: Fault[] = [];
    for (const a of this.rules) {
      const ops = a.rule.operation === undefined ? undefined : Array.isArray(a.rule.operation) ? a.rule.operation : [a.rule.operation];
      if (ops && !ops.includes(op)) continue;
      const index = a.seen++;
      if (a.rule.times !== undefined && a.injected >= a.rule.times) continue;
      let kind: FaultKind | null | undefined;
      if (a.rule.sequence) kind = a.rule.sequence[index] ?? null;
      else kind = this.random() < (a.rule.probability ?? 1) ? (a.rule.kind ?? null) : null;
      if (!kind) continue;
      a.injected++;
      out.push({ kind, latencyMs: a.rule.latencyMs ?? 200 });
      if (kind !== 'latency') break;
    }
    return out;
  }
}
