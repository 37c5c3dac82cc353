#!/usr/bin/env node
// Crypto throughput benchmark. Runs against the compiled code:
//   npx tsc -p tsconfig.json && node scripts/bench-crypto.mjs [--iterations N] [--mib M]
// Seals and opens one part of M MiB (default 64) per iteration with each
// libsodium backend, single-threaded, and reports best/median MB/s
// (MB = 10^6 bytes) next to machine baselines: `sha256sum` over the same
// bytes in a temp file (page-cached) and node's createHash('sha256').
// Also sweeps the raw AEAD over the same buffer at several chunk sizes,
// which is the evidence behind the 256 KiB chunk choice in docs/FORMAT.md.
import { spawnSync } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';

const args = process.argv.slice(2);
const opt = (name, dflt) => (args.includes(name) ? Number(args[args.indexOf(name) + 1]) : dflt);
const iterations = opt('--iterations', 5);
const mib = opt('--mib', 64);
const size = mib * 1024 * 1024;

const { loadSodium } = await import('../dist/src/crypto/sodium.js');
const { keyringFromMasterKey } = await import('../dist/src/crypto/keyring.js');

const data = new Uint8Array(size);
randomFillSync(data);
const mbps = (ms) => size / 1e6 / (ms / 1000);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

function time(n, fn) {
  const out = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    fn();
    out.push(performance.now() - t0);
  }
  return out;
}

const rows = [];
function row(name, ms) {
  const speeds = ms.map(mbps);
  rows.push({ name, best: Math.max(...speeds), median: median(speeds), runs: ms.length });
}

for (const mode of ['native', 'wasm']) {
  const sodium = await loadSodium(mode);
  const mk = new Uint8Array(32);
  sodium.randomBytes(mk);
  const kr = keyringFromMasterKey(sodium, mk);
  const ctx = { streamId: new Uint8Array(16), volumeIndex: 0, partIndex: 0, final: true };
  const n = mode === 'wasm' ? Math.max(2, Math.ceil(iterations / 2)) : iterations;
  let sealed = kr.sealPart(ctx, data); // warm-up (JIT, page faults)
  row(`${mode} sealPart`, time(n, () => (sealed = kr.sealPart(ctx, data))));
  kr.openPart(ctx, sealed);
  row(`${mode} openPart`, time(n, () => kr.openPart(ctx, sealed)));
  // Reused output buffers: what a pipeline with a fixed number of part slots sees.
  const sealBuf = new Uint8Array(sealed.length);
  const openBuf = new Uint8Array(size);
  kr.sealPartInto(ctx, data, sealBuf);
  row(`${mode} sealPartInto (reused buffer)`, time(n, () => kr.sealPartInto(ctx, data, sealBuf)));
  kr.openPartInto(ctx, sealBuf, openBuf);
  row(`${mode} openPartInto (reused buffer)`, time(n, () => kr.openPartInto(ctx, sealBuf, openBuf)));
}

// Baselines.
const dir = mkdtempSync(join(tmpdir(), 'zbk-bench-'));
try {
  const file = join(dir, 'data.bin');
  writeFileSync(file, data);
  spawnSync('sha256sum', [file]); // page-cache warm-up
  const sha = [];
  for (let i = 0; i < iterations; i++) {
    const t0 = performance.now();
    const r = spawnSync('sha256sum', [file]);
    sha.push(performance.now() - t0);
    if (r.status !== 0) throw new Error('sha256sum failed');
  }
  row('sha256sum (process, page cache)', sha);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
row("node createHash('sha256')", time(iterations, () => createHash('sha256').update(data).digest()));

// Raw AEAD chunk-size sweep (native backend, no container overhead).
const native = await loadSodium('native');
const key = new Uint8Array(32);
const nonce = new Uint8Array(24);
const ad = new Uint8Array(66);
for (const chunk of [64 * 1024, 256 * 1024, 1024 * 1024]) {
  const out = new Uint8Array(size + (size / chunk) * 16);
  row(`native raw AEAD, ${chunk / 1024} KiB chunks`, time(iterations, () => {
    for (let s = 0, d = 0; s < size; s += chunk, d += chunk + 16) {
      native.aeadEncrypt(out.subarray(d, d + chunk + 16), data.subarray(s, s + chunk), ad, nonce, key);
    }
  }));
}

const cpu = cpus()[0]?.model ?? 'unknown CPU';
console.log(`zbk crypto benchmark: ${mib} MiB part, ${iterations} iterations, node ${process.version}, ${cpu}, ${cpus().length} cores`);
console.log('');
console.log('| operation | best MB/s | median MB/s | runs |');
console.log('| --- | ---: | ---: | ---: |');
for (const r of rows) console.log(`| ${r.name} | ${r.best.toFixed(0)} | ${r.median.toFixed(0)} | ${r.runs} |`);
