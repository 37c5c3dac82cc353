#!/usr/bin/env node
// Ceiling of any `zfs send | <program>` consumer on this machine: reads
// stdin and does only the named amount of zbk's per-byte work, then discards
// it. scripts/bench-push runs it next to raw `zfs send > /dev/null` so the
// gap between "raw" and "zbk" can be split into what the pipe itself costs,
// what sealing costs and what zbk adds on top (docs/BENCHMARKS.md).
//
//   zfs send pool/ds@snap | node scripts/bench-sink.mjs MODE [partMiB=32]
//
// MODE:
//   read       copy stdin into one reused part buffer (what readParts does)
//   seal       read + XChaCha20-Poly1305 seal of each part into a reused
//              buffer (sealPartInto, native libsodium), nothing else
//   seal-sha   seal + one SHA-256 pass over the plaintext (the least
//              integrity data a resumable push can keep)
// Prints one JSON line: { mode, bytes, seconds } to stdout. Run after a build.
import { createHash, randomBytes } from 'node:crypto';
import { keyringFromMasterKey, loadSodium, sealedPartSize } from '../dist/src/crypto/index.js';

const MiB = 1024 * 1024;
const mode = process.argv[2] ?? 'read';
const partSize = Number(process.argv[3] ?? 32) * MiB;
if (!['read', 'seal', 'seal-sha'].includes(mode)) {
  console.error(`bench-sink: unknown mode ${mode} (read, seal, seal-sha)`);
  process.exit(2);
}

const keyring = mode === 'read' ? null : keyringFromMasterKey(await loadSodium(), randomBytes(32));
const part = Buffer.allocUnsafeSlow(partSize);
const sealed = Buffer.allocUnsafeSlow(sealedPartSize(partSize));
const streamId = randomBytes(16);
let filled = 0;
let partIndex = 0;
let bytes = 0;

function consume(data) {
  if (!keyring) return;
  keyring.sealPartInto({ streamId, volumeIndex: 0, partIndex: partIndex++, final: false }, data, sealed);
  if (mode === 'seal-sha') createHash('sha256').update(data).digest();
}

const t0 = process.hrtime.bigint();
for await (const chunk of process.stdin) {
  bytes += chunk.length;
  let off = 0;
  while (off < chunk.length) {
    const take = Math.min(partSize - filled, chunk.length - off);
    chunk.copy(part, filled, off, off + take);
    filled += take;
    off += take;
    if (filled === partSize) {
      consume(part);
      filled = 0;
    }
  }
}
if (filled > 0) consume(part.subarray(0, filled));
const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
console.log(JSON.stringify({ mode, bytes, seconds }));
