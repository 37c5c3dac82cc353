/**
 * The part-opening worker thread (see WorkerPartOpener in part-opener.ts):
 * authenticates and decrypts sealed parts from shared memory into shared
 * memory and keeps each volume's running plaintext SHA-256, so the restore's
 * main thread only moves bytes (network, staging file, `zfs receive`).
 * Requests are answered in the order they came.
 */
import { createHash, type Hash } from 'node:crypto';
import { parentPort, workerData } from 'node:worker_threads';
import { openPartWithKey, type PartOpeningKey } from '../crypto/keyring.js';
import { loadSodium } from '../crypto/sodium.js';
import { IntegrityError } from '../errors.js';
import type { OpenerRequest, SharedView } from './part-opener.js';
import type { WorkerReply } from './worker-client.js';

const key = workerData as PartOpeningKey;
const port = parentPort!;
const sodiumReady = loadSodium();
const volumes = new Map<number, Hash>();

const view = (v: SharedView): Uint8Array => new Uint8Array(v.buffer, v.offset, v.length);

async function answer(m: OpenerRequest): Promise<WorkerReply> {
  const sodium = await sodiumReady;
  switch (m.op) {
    case 'open': {
      const ctx = { streamId: m.streamId, volumeIndex: m.volumeIndex, partIndex: m.partIndex, final: m.final };
      const plain = openPartWithKey(sodium, key, ctx, view(m.sealed), view(m.out));
      let h = volumes.get(m.volume);
      if (!h) volumes.set(m.volume, (h = createHash('sha256')));
      h.update(plain);
      return { id: m.id, value: plain.length };
    }
    case 'digest': {
      const h = volumes.get(m.volume) ?? createHash('sha256');
      volumes.delete(m.volume);
      return { id: m.id, value: h.digest('hex') };
    }
    case 'discard':
      volumes.delete(m.volume);
      return { id: m.id, value: 0 };
    case 'close':
      sodium.memzero(key.dataKey);
      return { id: m.id, value: 0 };
  }
}

// One request at a time, in order: a volume's hash must see its parts in order.
let queue: Promise<void> = Promise.resolve();
port.on('message', (m: OpenerRequest) => {
  queue = queue.then(async () => {
    let reply: WorkerReply;
    try {
      reply = await answer(m);
    } catch (err) {
      reply = { id: m.id, error: err instanceof Error ? err.message : String(err), integrity: err instanceof IntegrityError };
    }
    port.postMessage(reply);
  });
});
