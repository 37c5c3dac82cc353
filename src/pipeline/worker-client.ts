/**
 * Request/reply over a worker thread, as the pipeline's workers (the push's
 * hash worker, the restore's part opener) speak it: each request carries an
 * `id`, the worker answers every request once with `{ id, value | error }`.
 * The thread keeps node alive until `terminate` (owners call it in a
 * `finally`): a thread unref'd while idle let node's event loop end in the
 * middle of an upload in CI. Once the thread fails or exits, every pending
 * and later request rejects with that error.
 */
import type { Worker } from 'node:worker_threads';

/** A worker's answer to request `id`. */
export interface WorkerReply {
  id: number;
  value?: unknown;
  error?: string;
  /** The worker's error was an IntegrityError (authentication failed). */
  integrity?: boolean;
}

export class WorkerClient {
  private readonly pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  private nextId = 0;
  private dead: Error | null = null;

  /**
   * @param name how errors call the thread ("hash worker")
   * @param errorOf the error for a reply that carries one (default: `name: message`)
   */
  constructor(
    private readonly worker: Worker,
    name: string,
    private readonly errorOf: (r: WorkerReply & { error: string }) => Error = (r) => new Error(`${name}: ${r.error}`),
  ) {
    worker.on('message', (r: WorkerReply) => {
      const p = this.pending.get(r.id);
      if (!p) return;
      this.pending.delete(r.id);
      if (r.error !== undefined) p.reject(this.errorOf({ ...r, error: r.error }));
      else if (r.value === undefined) p.reject(new Error(`${name}: no result`));
      else p.resolve(r.value);
    });
    const die = (err: Error): void => {
      this.dead ??= err;
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
    };
    worker.on('error', (err) => die(err));
    worker.on('exit', (code) => die(new Error(`${name} exited (code ${code})`)));
  }

  /** True once the thread failed or exited. */
  get isDead(): boolean {
    return this.dead !== null;
  }

  /** Post `message` with a fresh id; resolves with the reply's value. */
  request(message: Record<string, unknown>): Promise<unknown> {
    if (this.dead) return Promise.reject(this.dead);
    const id = this.nextId++;
    const p = new Promise<unknown>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ ...message, id });
    });
    // Callers await it; this only keeps a rejection after an earlier failure from being "unhandled".
    p.catch(() => undefined);
    return p;
  }

  async terminate(): Promise<void> {
    await this.worker.terminate();
  }
}
