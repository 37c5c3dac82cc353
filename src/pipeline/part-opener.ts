/**
 * Opening sealed parts on the restore side: authenticate, decrypt, and keep
 * each volume's running plaintext SHA-256. Two implementations with one
 * contract: inline on the calling thread (any Keyring), and on a worker
 * thread over shared memory (ZbkKeyring), which takes the two costliest
 * steps of a restore (≈ 0.7 s decrypt + 0.5 s SHA-256 per GB here) off the
 * main thread that moves the bytes. Results are identical either way.
 */
import { createHash, type Hash } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { ZbkKeyring, type PartOpeningKey } from '../crypto/keyring.js';
import type { Keyring, PartContext } from '../crypto/types.js';
import { IntegrityError } from '../errors.js';
import { WorkerClient } from './worker-client.js';

export interface PartOpener {
  /**
   * A buffer `open` reads or writes without copying (shared memory for the
   * worker). Sealed and plaintext buffers passed to `open` must come from
   * here.
   */
  allocate(size: number): Buffer;
  /**
   * Buffer `i` of a small set kept for reuse (at least `size` bytes, from
   * `allocate`): fresh buffers of a part's size cost page faults and zeroing
   * in the kernel for every volume. For one user at a time: a restore
   * downloads one volume after another.
   */
  scratch(i: number, size: number): Buffer;
  /** A new running hash; its token names it in `open`, `digest` and `discard`. */
  beginVolume(): number;
  /**
   * Authenticate and decrypt part `ctx` from `sealed` into `out` (at least
   * the plaintext length) and append the plaintext to hash `volume`.
   * Resolves with the plaintext (a prefix of `out`) once neither buffer is
   * read or written any more. Rejects with IntegrityError when any byte is
   * wrong (nothing appended to the hash, `out` unspecified); parts of one
   * volume must be opened in order, one at a time.
   */
  open(volume: number, ctx: PartContext, sealed: Uint8Array, out: Uint8Array): Promise<Uint8Array>;
  /** Hex SHA-256 of everything opened into `volume`; the hash is then gone. */
  digest(volume: number): Promise<string>;
  /** Forget hash `volume` (an abandoned volume). */
  discard(volume: number): void;
  /** Release the thread and wipe its copy of the key. Idempotent. */
  close(): Promise<void>;
}

/** The reusable buffers behind PartOpener.scratch. */
class ScratchBuffers {
  private readonly bufs: Buffer[] = [];

  constructor(private readonly allocate: (size: number) => Buffer) {}

  get(i: number, size: number): Buffer {
    let b = this.bufs[i];
    if (!b || b.length < size) this.bufs[i] = b = this.allocate(size);
    return b;
  }

  clear(): void {
    this.bufs.length = 0;
  }
}

/** Opens on the calling thread. */
export class InlinePartOpener implements PartOpener {
  private readonly scratchBufs = new ScratchBuffers((n) => this.allocate(n));
  private readonly volumes = new Map<number, Hash>();
  private next = 0;

  constructor(private readonly keyring: Keyring) {}

  allocate(size: number): Buffer {
    return Buffer.allocUnsafeSlow(size);
  }

  scratch(i: number, size: number): Buffer {
    return this.scratchBufs.get(i, size);
  }

  beginVolume(): number {
    const token = this.next++;
    this.volumes.set(token, createHash('sha256'));
    return token;
  }

  open(volume: number, ctx: PartContext, sealed: Uint8Array, out: Uint8Array): Promise<Uint8Array> {
    try {
      const k = this.keyring;
      let plain: Uint8Array;
      if (k instanceof ZbkKeyring) plain = k.openPartInto(ctx, sealed, out);
      else {
        const fresh = k.openPart(ctx, sealed);
        out.set(fresh);
        plain = out.subarray(0, fresh.length);
      }
      this.hashOf(volume).update(plain);
      return Promise.resolve(plain);
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
  }

  digest(volume: number): Promise<string> {
    const d = this.hashOf(volume).digest('hex');
    this.volumes.delete(volume);
    return Promise.resolve(d);
  }

  discard(volume: number): void {
    this.volumes.delete(volume);
  }

  close(): Promise<void> {
    this.volumes.clear();
    this.scratchBufs.clear();
    return Promise.resolve();
  }

  private hashOf(volume: number): Hash {
    const h = this.volumes.get(volume);
    if (!h) throw new Error(`internal: no running hash ${volume}`);
    return h;
  }
}

/** A slice of shared memory as posted to the worker. */
export interface SharedView {
  buffer: SharedArrayBuffer;
  offset: number;
  length: number;
}

/** Messages to the worker (part-opener-worker.ts). */
export type OpenerRequest =
  | { id: number; op: 'open'; volume: number; streamId: Uint8Array; volumeIndex: number; partIndex: number; final: boolean; sealed: SharedView; out: SharedView }
  | { id: number; op: 'digest' | 'discard' | 'close'; volume: number };

function shared(b: Uint8Array, what: string): SharedView {
  if (!(b.buffer instanceof SharedArrayBuffer)) throw new Error(`internal: ${what} buffer is not from PartOpener.allocate`);
  return { buffer: b.buffer, offset: b.byteOffset, length: b.byteLength };
}

/**
 * Opens on a worker thread. The worker holds a copy of the data subkey
 * (same process; wiped at `close`). The thread keeps node alive until
 * `close`: owners close it in a `finally` (restoreRun does).
 */
export class WorkerPartOpener implements PartOpener {
  private readonly client: WorkerClient;
  private nextVolume = 0;
  private closed: Promise<void> | null = null;
  private readonly scratchBufs = new ScratchBuffers((n) => this.allocate(n));

  constructor(key: PartOpeningKey) {
    let worker: Worker;
    try {
      worker = new Worker(new URL('./part-opener-worker.js', import.meta.url), { workerData: key });
    } finally {
      key.dataKey.fill(0); // the worker has its own copy
    }
    this.client = new WorkerClient(worker, 'part opener', (r) => (r.integrity ? new IntegrityError(r.error) : new Error(`part opener: ${r.error}`)));
  }

  allocate(size: number): Buffer {
    return Buffer.from(new SharedArrayBuffer(size));
  }

  scratch(i: number, size: number): Buffer {
    return this.scratchBufs.get(i, size);
  }

  beginVolume(): number {
    return this.nextVolume++;
  }

  async open(volume: number, ctx: PartContext, sealed: Uint8Array, out: Uint8Array): Promise<Uint8Array> {
    // A copy of its own: a Buffer from Node's shared pool would carry its whole 8 KiB slab (other small allocations) to the worker.
    const req = { op: 'open', volume, streamId: new Uint8Array(ctx.streamId), volumeIndex: ctx.volumeIndex, partIndex: ctx.partIndex, final: ctx.final, sealed: shared(sealed, 'sealed'), out: shared(out, 'plaintext') } as const;
    const n = (await this.request(req)) as number;
    return out.subarray(0, n);
  }

  async digest(volume: number): Promise<string> {
    return (await this.request({ op: 'digest', volume })) as string;
  }

  discard(volume: number): void {
    this.request({ op: 'discard', volume }).catch(() => undefined);
  }

  close(): Promise<void> {
    this.closed ??= (async () => {
      if (!this.client.isDead) await this.request({ op: 'close', volume: 0 }).catch(() => undefined);
      await this.client.terminate();
      this.scratchBufs.clear();
    })();
    return this.closed;
  }

  private request(m: Omit<OpenerRequest, 'id'>): Promise<unknown> {
    return this.client.request(m);
  }
}

/**
 * The fastest opener for `keyring`: a worker thread for a ZbkKeyring
 * (unless `ZBK_OPEN_WORKER=0`, for comparison), inline otherwise.
 */
export function createPartOpener(keyring: Keyring): PartOpener {
  if (keyring instanceof ZbkKeyring && process.env.ZBK_OPEN_WORKER !== '0') return new WorkerPartOpener(keyring.partOpeningKey());
  return new InlinePartOpener(keyring);
}
