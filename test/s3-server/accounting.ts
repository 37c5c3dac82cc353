/** Request and traffic counters, for tests that assert on cost-relevant behaviour. */

/** Counters; all mutable in place, `reset()` zeroes them. */
export interface Accounting {
  /** Requests by operation name (every request the server routed, including injected faults). */
  requests: Record<string, number>;
  /** Requests by "Operation:STORAGE_CLASS" where the operation concerns an object or upload with a class. */
  requestsByClass: Record<string, number>;
  /** Request body bytes received as sent on the wire (aws-chunked framing included). */
  bytesIn: number;
  /** Object data bytes sent by GetObject (what AWS bills as egress). */
  bytesOut: number;
  /** `bytesOut` by calendar month ("YYYY-MM", UTC) of the TestClock. */
  bytesOutByMonth: Record<string, number>;
  /** RestoreObject requests that started or refreshed a restore, by tier. */
  restoreRequestsByTier: Record<string, number>;
  /**
   * ListObjectsV2 requests that asked for `OptionalObjectAttributes=RestoreStatus`
   * (also counted in `requests.ListObjectsV2`, like every LIST), and the
   * objects those listings returned.
   */
  restoreStatusLists: { requests: number; objects: number };
  reset(): void;
}

const bump = (r: Record<string, number>, k: string, n = 1): void => {
  r[k] = (r[k] ?? 0) + n;
};

/** Mutable accounting with helpers the server uses. */
export class Counters implements Accounting {
  requests: Record<string, number> = {};
  requestsByClass: Record<string, number> = {};
  bytesIn = 0;
  bytesOut = 0;
  bytesOutByMonth: Record<string, number> = {};
  restoreRequestsByTier: Record<string, number> = {};
  restoreStatusLists = { requests: 0, objects: 0 };

  reset(): void {
    this.requests = {};
    this.requestsByClass = {};
    this.bytesIn = 0;
    this.bytesOut = 0;
    this.bytesOutByMonth = {};
    this.restoreRequestsByTier = {};
    this.restoreStatusLists = { requests: 0, objects: 0 };
  }

  request(op: string): void {
    bump(this.requests, op);
  }
  requestClass(op: string, storageClass: string): void {
    bump(this.requestsByClass, `${op}:${storageClass}`);
  }
  out(n: number, nowMs: number): void {
    this.bytesOut += n;
    bump(this.bytesOutByMonth, new Date(nowMs).toISOString().slice(0, 7), n);
  }
  restore(tier: string): void {
    bump(this.restoreRequestsByTier, tier);
  }
  restoreStatusList(objects: number): void {
    this.restoreStatusLists.requests++;
    this.restoreStatusLists.objects += objects;
  }
}
