/** Shared server state and the per-request context handlers work with. */
import type { IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';
import type { Counters } from './accounting.js';
import type { TestClock } from './clock.js';
import { noSuchBucket } from './errors.js';
import type { Bucket } from './model.js';
import type { S3Operation } from './operations.js';
import type { Persistence } from './persist.js';
import type { Quirks } from './quirks.js';

export interface ServerConfig {
  region: string;
  minPartSize: number;
  restoreDelayMs: number;
  /** ListObjectsV2 honours `OptionalObjectAttributes=RestoreStatus` (false: ignores it, as some S3-compatible services do). */
  restoreStatusInLists: boolean;
  /** The provider emulated (part limits, restore semantics, storage classes); minPartSize and restoreStatusInLists above win over its own. */
  quirks: Quirks;
}

/** Everything that outlives a request. */
export class ServerState {
  constructor(
    readonly buckets: Map<string, Bucket>,
    readonly persist: Persistence,
    readonly clock: TestClock,
    readonly counters: Counters,
    readonly config: ServerConfig,
  ) {}

  /** Clock time in ms, truncated to whole seconds as S3 timestamps are. */
  nowSeconds(): number {
    return Math.floor(this.clock.nowMs() / 1000) * 1000;
  }

  bucket(name: string): Bucket {
    const b = this.buckets.get(name);
    if (!b) throw noSuchBucket(name);
    return b;
  }

  /** Create a bucket if missing (idempotent, as us-east-1 CreateBucket is for its owner). */
  ensureBucket(name: string): Bucket {
    let b = this.buckets.get(name);
    if (!b) {
      b = { name, created: this.nowSeconds(), objects: new Map(), uploads: new Map() };
      this.buckets.set(name, b);
      this.persist.saveBucket(b);
    }
    return b;
  }
}

export interface RequestContext {
  req: IncomingMessage;
  url: URL;
  op: S3Operation;
  bucket: string;
  key: string;
  requestId: string;
  state: ServerState;
  /** Count wire bytes of the request body. */
  onBytesIn: (n: number) => void;
}

/** What a handler answers; the server turns it into an HTTP response. */
export interface Reply {
  status: number;
  headers?: Record<string, string | number>;
  body?: string | Readable;
  /** Body bytes are object data: count them as egress. */
  egress?: boolean;
  /** Storage class to account the request under. */
  storageClass?: string;
}

/** First value of a request header. */
export function hdr(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}
