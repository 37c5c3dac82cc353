#!/usr/bin/env node
// Throughput of uploadStream (read → hash → seal → store's checksum) against a
// raw read of the same generated source. The store discards the bytes, so
// this measures the pipeline's CPU cost, not the network. Run after a build:
//   node scripts/bench-pipeline.mjs [totalMiB=1024] [partMiB=8] [parallel=2]
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { keyringFromMasterKey, loadSodium, sealedPartSize } from '../dist/src/crypto/index.js';
import { uploadStream } from '../dist/src/pipeline/upload.js';

const MiB = 1024 * 1024;
const [totalMiB = 1024, partMiB = 8, parallel = 2] = process.argv.slice(2).map(Number);
const total = totalMiB * MiB;

function source() {
  let sent = 0;
  const chunk = randomBytes(128 * 1024); // zfs send writes 128 KiB records through a pipe
  return new Readable({
    read() {
      if (sent >= total) return void this.push(null);
      const n = Math.min(chunk.length, total - sent);
      sent += n;
      this.push(Buffer.from(chunk.subarray(0, n)));
    },
  });
}

const discard = {
  url: 'discard://',
  sizes: new Map(),
  async createMultipartUpload() { return randomBytes(8).toString('hex'); },
  // Like every store, computes the sealed part's checksum (the pipeline leaves it to the store).
  async uploadPart(_k, _u, partNumber, body) { return { partNumber, size: body.length, etag: 'e', checksumSha256: createHash('sha256').update(body).digest('base64') }; },
  async listParts() { return []; },
  async completeMultipartUpload(key, _u, parts) { this.sizes.set(key, parts.reduce((n, p) => n + p.size, 0)); },
  async head(key) { return { key, size: this.sizes.get(key), storageClass: 'STANDARD', lastModified: new Date(), metadata: {}, restore: { state: 'not-archived' } }; },
};

async function raw() {
  const t = process.hrtime.bigint();
  let n = 0;
  for await (const c of source()) n += c.length;
  return { n, s: Number(process.hrtime.bigint() - t) / 1e9 };
}

async function pipeline() {
  const keyring = keyringFromMasterKey(await loadSodium(), randomBytes(32));
  const t = process.hrtime.bigint();
  const res = await uploadStream({
    store: discard, keyring, source: source(), streamId: randomBytes(16),
    partSize: partMiB * MiB, volumeSize: 4096 * MiB, parallel, storageClass: 'STANDARD',
    volumeMetadata: () => ({}), sealedSize: sealedPartSize,
    checkpoint: { volumeStarted() {}, partAcknowledged() {}, volumeCompleted() {} },
  });
  return { n: res.plaintextSize, s: Number(process.hrtime.bigint() - t) / 1e9, backend: keyring.backend };
}

const r = await raw();
const p = await pipeline();
const rate = (x) => (x.n / MiB / x.s).toFixed(0);
console.log(`raw read:     ${rate(r)} MiB/s`);
console.log(`uploadStream: ${rate(p)} MiB/s (sodium ${p.backend}, part ${partMiB} MiB, parallel ${parallel}, rss ${(process.memoryUsage().rss / MiB).toFixed(0)} MiB)`);
console.log(`ratio:        ${(rate(p) / rate(r)).toFixed(2)}`);
