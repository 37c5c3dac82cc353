/**
 * Storage of bodies and state. Without a directory everything stays in
 * memory; with one, bodies are streamed to files and every state change is
 * written as a small JSON file (atomically: temp file + rename), so a server
 * restarted on the same directory — or a client killed mid-upload — sees the
 * same buckets, objects, uploads and parts.
 *
 * Layout under the directory:
 *   blobs/<id>.bin                                 bodies of objects and parts
 *   tmp/                                           bodies being received
 *   buckets/<name>/bucket.json
 *   buckets/<name>/objects/<sha256(key)>.json
 *   buckets/<name>/uploads/<uploadId>/upload.json
 *   buckets/<name>/uploads/<uploadId>/part-<n>.json
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, unlinkSync, writeFileSync, existsSync, type WriteStream } from 'node:fs';
import { basename, join } from 'node:path';
import { Readable } from 'node:stream';
import type { BlobRef, Bucket, StoredObject, StoredPart, Upload } from './model.js';

/** Receives one body; either committed into a BlobRef or discarded. */
export interface BlobSink {
  write(chunk: Buffer): Promise<void>;
  commit(): Promise<BlobRef>;
  discard(): void;
}

export class MemorySink implements BlobSink {
  private chunks: Buffer[] = [];
  private size = 0;
  async write(chunk: Buffer): Promise<void> {
    this.chunks.push(chunk);
    this.size += chunk.length;
  }
  async commit(): Promise<BlobRef> {
    const mem = Buffer.concat(this.chunks, this.size);
    this.chunks = [];
    return { mem, size: mem.length };
  }
  discard(): void {
    this.chunks = [];
  }
}

class FileSink implements BlobSink {
  private readonly out: WriteStream;
  private size = 0;
  private failed: Error | undefined;
  constructor(
    private readonly tmpPath: string,
    private readonly finalPath: string,
  ) {
    this.out = createWriteStream(tmpPath);
    this.out.on('error', (e) => (this.failed = e));
  }
  async write(chunk: Buffer): Promise<void> {
    if (this.failed) throw this.failed;
    this.size += chunk.length;
    // Respect back-pressure so a large body never piles up in memory.
    if (!this.out.write(chunk)) await new Promise<void>((res, rej) => {
      const onErr = (e: Error): void => rej(e);
      this.out.once('error', onErr);
      this.out.once('drain', () => {
        this.out.off('error', onErr);
        res();
      });
    });
  }
  async commit(): Promise<BlobRef> {
    await new Promise<void>((res, rej) => {
      this.out.once('error', rej);
      this.out.end(() => res());
    });
    if (this.failed) throw this.failed;
    renameSync(this.tmpPath, this.finalPath);
    return { file: this.finalPath, size: this.size };
  }
  discard(): void {
    this.out.destroy();
    rmSync(this.tmpPath, { force: true });
  }
}

/** Read a blob, optionally an inclusive byte range of it. */
export function readBlob(blob: BlobRef, start = 0, end = blob.size - 1): Readable {
  if (blob.pieces) return Readable.from(readPieces(blob.pieces, start, end));
  if (blob.mem) return Readable.from([blob.mem.subarray(start, end + 1)]);
  if (end < start) return Readable.from([]);
  // 1 MiB reads: the default 64 KiB made this stand-in for S3 spend more CPU per GB than the restore it serves.
  return createReadStream(blob.file as string, { start, end, highWaterMark: 1024 * 1024 });
}

const keyFile = (key: string): string => createHash('sha256').update(key).digest('hex') + '.json';

/** The bytes [start, end] of pieces laid end to end, piece by piece. */
async function* readPieces(pieces: readonly BlobRef[], start: number, end: number): AsyncGenerator<Buffer> {
  let at = 0;
  for (const p of pieces) {
    const lo = Math.max(start, at);
    const hi = Math.min(end, at + p.size - 1);
    if (lo <= hi) for await (const chunk of readBlob(p, lo - at, hi - at)) yield chunk as Buffer;
    at += p.size;
    if (at > end) return;
  }
}

/** The leaf blobs of `blob` (itself, or its pieces'). */
export function leafBlobs(blob: BlobRef): BlobRef[] {
  return blob.pieces ? blob.pieces.flatMap(leafBlobs) : [blob];
}

interface SerializedBlob {
  file?: string;
  size: number;
  pieces?: SerializedBlob[];
}

function writeJsonAtomic(path: string, value: unknown): void {
  const tmp = `${path}.${randomBytes(4).toString('hex')}.tmp`;
  writeFileSync(tmp, JSON.stringify(value));
  renameSync(tmp, path);
}

type Serialized<T> = Omit<T, 'blob'> & { blob: SerializedBlob };

/** Blob file names relative to blobs/, so the directory may move. */
function serializeBlob(b: BlobRef): SerializedBlob {
  if (b.pieces) return { size: b.size, pieces: b.pieces.map(serializeBlob) };
  return { file: b.file && basename(b.file), size: b.size };
}

/** Persistence backend; `dir` undefined means in-memory only. */
export class Persistence {
  constructor(private readonly dir: string | undefined) {
    if (dir) {
      mkdirSync(join(dir, 'blobs'), { recursive: true });
      // Bodies that were being received when a previous server died are garbage.
      rmSync(join(dir, 'tmp'), { recursive: true, force: true });
      mkdirSync(join(dir, 'tmp'), { recursive: true });
      mkdirSync(join(dir, 'buckets'), { recursive: true });
    }
  }

  /** A sink for a new body. */
  newSink(): BlobSink {
    if (!this.dir) return new MemorySink();
    const id = randomBytes(12).toString('hex');
    return new FileSink(join(this.dir, 'tmp', `${id}.part`), join(this.dir, 'blobs', `${id}.bin`));
  }

  /** Forget a blob that is no longer referenced. Open readers keep their data (POSIX unlink). */
  dropBlob(blob: BlobRef | undefined): void {
    for (const leaf of blob ? leafBlobs(blob) : []) if (leaf.file) rmSync(leaf.file, { force: true });
  }

  private bucketDir(name: string): string {
    return join(this.dir as string, 'buckets', name);
  }

  saveBucket(b: Bucket): void {
    if (!this.dir) return;
    const d = this.bucketDir(b.name);
    mkdirSync(join(d, 'objects'), { recursive: true });
    mkdirSync(join(d, 'uploads'), { recursive: true });
    writeJsonAtomic(join(d, 'bucket.json'), { name: b.name, created: b.created, lifecycle: b.lifecycle });
  }

  saveObject(bucket: string, o: StoredObject): void {
    if (!this.dir) return;
    const s: Serialized<StoredObject> = { ...o, blob: serializeBlob(o.blob) };
    writeJsonAtomic(join(this.bucketDir(bucket), 'objects', keyFile(o.key)), s);
  }

  deleteObject(bucket: string, key: string): void {
    if (!this.dir) return;
    rmSync(join(this.bucketDir(bucket), 'objects', keyFile(key)), { force: true });
  }

  saveUpload(bucket: string, u: Upload): void {
    if (!this.dir) return;
    const d = join(this.bucketDir(bucket), 'uploads', u.uploadId);
    mkdirSync(d, { recursive: true });
    const { parts: _parts, ...rest } = u;
    writeJsonAtomic(join(d, 'upload.json'), rest);
  }

  savePart(bucket: string, uploadId: string, p: StoredPart): void {
    if (!this.dir) return;
    const s: Serialized<StoredPart> = { ...p, blob: serializeBlob(p.blob) };
    writeJsonAtomic(join(this.bucketDir(bucket), 'uploads', uploadId, `part-${p.partNumber}.json`), s);
  }

  deleteUpload(bucket: string, uploadId: string): void {
    if (!this.dir) return;
    rmSync(join(this.bucketDir(bucket), 'uploads', uploadId), { recursive: true, force: true });
  }

  /** Stored blob names are relative to blobs/, so the directory may move. */
  private resolveBlob(b: SerializedBlob): BlobRef {
    if (b.pieces) return { pieces: b.pieces.map((p) => this.resolveBlob(p)), size: b.size };
    return b.file ? { file: join(this.dir as string, 'blobs', b.file), size: b.size } : { mem: Buffer.alloc(0), size: 0 };
  }

  /** Load all state from the directory and delete blobs nothing refers to. */
  load(): Map<string, Bucket> {
    const buckets = new Map<string, Bucket>();
    if (!this.dir) return buckets;
    const referenced = new Set<string>();
    const readJson = <T>(p: string): T => JSON.parse(readFileSync(p, 'utf8')) as T;
    for (const name of readdirSync(join(this.dir, 'buckets'))) {
      const d = this.bucketDir(name);
      if (!existsSync(join(d, 'bucket.json'))) continue;
      const meta = readJson<{ name: string; created: number; lifecycle?: string }>(join(d, 'bucket.json'));
      const b: Bucket = { ...meta, objects: new Map(), uploads: new Map() };
      for (const f of readdirSync(join(d, 'objects'))) {
        if (!f.endsWith('.json')) continue;
        const o = readJson<StoredObject>(join(d, 'objects', f));
        o.blob = this.resolveBlob(o.blob);
        for (const leaf of leafBlobs(o.blob)) if (leaf.file) referenced.add(leaf.file);
        b.objects.set(o.key, o);
      }
      for (const id of readdirSync(join(d, 'uploads'))) {
        const ud = join(d, 'uploads', id);
        if (!existsSync(join(ud, 'upload.json'))) continue;
        const u: Upload = { ...readJson<Omit<Upload, 'parts'>>(join(ud, 'upload.json')), parts: new Map() };
        for (const f of readdirSync(ud)) {
          if (!/^part-\d+\.json$/.test(f)) continue;
          const p = readJson<StoredPart>(join(ud, f));
          p.blob = this.resolveBlob(p.blob);
          for (const leaf of leafBlobs(p.blob)) if (leaf.file) referenced.add(leaf.file);
          u.parts.set(p.partNumber, p);
        }
        b.uploads.set(u.uploadId, u);
      }
      buckets.set(name, b);
    }
    for (const f of readdirSync(join(this.dir, 'blobs'))) {
      const p = join(this.dir, 'blobs', f);
      if (!referenced.has(p)) unlinkSync(p);
    }
    return buckets;
  }
}
