/** Shared fixtures for pipeline tests: a real keyring, byte sources, a recording checkpoint. */
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { keyringFromMasterKey, loadSodium, sealedPartSize } from '../../src/crypto/index.js';
import type { Keyring } from '../../src/crypto/types.js';
import type { VolumeRecord } from '../../src/layout.js';
import type { AcknowledgedPart, PartAcknowledgement, ResumeState, ResumeVolume, UploadCheckpoint } from '../../src/pipeline/upload.js';

export const sealedSize = sealedPartSize;

export async function testKeyring(): Promise<Keyring> {
  return keyringFromMasterKey(await loadSodium(), randomBytes(32));
}

/** Deterministic pseudo-random bytes (so two sources can be equal or differ on purpose). */
export function bytesOf(size: number, seed: number): Buffer {
  const out = Buffer.allocUnsafe(size);
  let block = Buffer.alloc(0);
  for (let off = 0, i = 0; off < size; off += block.length, i++) {
    block = createHash('sha256').update(`${seed}:${i}`).digest();
    block.copy(out, off, 0, Math.min(block.length, size - off));
  }
  return out;
}

/**
 * A Readable over `data` in irregular chunk sizes (so part boundaries never
 * line up with chunks). `destroyed` tells whether the pipeline killed it.
 */
export function sourceOf(data: Buffer, chunkSizes: number[] = [1000, 7, 4096, 333, 65536]): Readable & { readBytes: () => number } {
  let off = 0;
  let i = 0;
  const r = new Readable({
    read() {
      if (off >= data.length) {
        this.push(null);
        return;
      }
      const n = chunkSizes[i++ % chunkSizes.length]!;
      const chunk = data.subarray(off, Math.min(data.length, off + n));
      off += chunk.length;
      this.push(Buffer.from(chunk));
    },
  });
  return Object.assign(r, { readBytes: () => off });
}

export async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/**
 * Records every checkpoint call the way a manifest would persist it, and can
 * build the ResumeState a restarted push would load. `failAtPart` makes the
 * n-th partAcknowledged call throw (a crash before that part is recorded).
 */
export class RecordingCheckpoint implements UploadCheckpoint {
  readonly volumes = new Map<number, ResumeVolume>();
  acks = 0;
  completed: VolumeRecord[] = [];
  /** Once a simulated crash fired, every later call fails too (the process is gone). */
  private crashed = false;
  constructor(
    private readonly failAtPart = Infinity,
    private readonly failAtVolumeCompleted = Infinity,
  ) {}

  volumeStarted(v: { volumeIndex: number; key: string; uploadId: string }): void {
    this.alive();
    const prev = this.volumes.get(v.volumeIndex);
    // A replacement upload invalidates the parts acknowledged under the old id.
    this.volumes.set(v.volumeIndex, { key: v.key, uploadId: v.uploadId, completed: null, parts: prev?.uploadId === v.uploadId ? prev.parts : new Map() });
  }

  async partAcknowledged(p: PartAcknowledgement): Promise<void> {
    await Promise.resolve();
    this.alive();
    if (++this.acks >= this.failAtPart) this.crash(`checkpoint crash at part ack ${this.acks}`);
    const v = this.volumes.get(p.volumeIndex);
    if (!v) throw new Error(`part acknowledged for a volume never started: ${p.volumeIndex}`);
    const { volumeIndex: _v, partNumber, ...rest } = p;
    const ack: AcknowledgedPart = rest;
    v.parts.set(partNumber, ack);
  }

  volumeCompleted(rec: VolumeRecord): void {
    this.alive();
    if (this.completed.length + 1 >= this.failAtVolumeCompleted) this.crash('checkpoint crash at volume completion');
    const v = this.volumes.get(rec.index);
    if (v) v.completed = rec;
    else this.volumes.set(rec.index, { key: rec.key, uploadId: null, completed: rec, parts: new Map() });
    this.completed.push(rec);
  }

  private alive(): void {
    if (this.crashed) throw new Error('checkpoint already crashed');
  }

  private crash(message: string): never {
    this.crashed = true;
    throw new Error(message);
  }

  /** The state a restarted process reloads: same records, no scripted crash. */
  restart(): RecordingCheckpoint {
    const next = new RecordingCheckpoint();
    for (const [i, v] of this.resumeState().volumes) next.volumes.set(i, v);
    next.completed = [...this.completed];
    return next;
  }

  /** Deep copy, as a reload from disk would give. */
  resumeState(): ResumeState {
    const volumes = new Map<number, ResumeVolume>();
    for (const [i, v] of this.volumes) volumes.set(i, { ...v, parts: new Map(v.parts) });
    return { volumes };
  }
}
