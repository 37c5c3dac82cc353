/**
 * A synthetic restore for tests and benchmarks of polling and thaw
 * requests at scale, without ZFS, a key or real data: a manifest with one
 * dataset whose chain has the volumes asked for (a full stream and
 * incrementals), each a tiny DEEP_ARCHIVE object in the S3 test server of
 * the size the manifest records, a service context over them whose clock
 * is the server's, and a saved restore job of the chain. `step()` makes a
 * RestoreStep on the saved job for `advanceVolumes` (src/services/restore/
 * run.ts: the listing, the preflight, the thaws due, each volume's next
 * move) — nothing can be downloaded (no key), which a poll while the thaws
 * run never does.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { configFromObject } from '../../src/config/config.js';
import { volumeKey } from '../../src/layout.js';
import { Manifest } from '../../src/manifest/manifest.js';
import { silentLogger, type Logger, type ServiceContext } from '../../src/services/context.js';
import { loadJob, saveJob, type RestoreJob } from '../../src/services/restore/job.js';
import { buildJob } from '../../src/services/restore/plan.js';
import { RestoreStep } from '../../src/services/restore/step.js';
import { openStore } from '../../src/store/open-store.js';
import { S3Store } from '../../src/store/s3-store.js';
import type { S3TestServer } from '../s3-server/index.js';

export const SYNTHETIC_DATASET = 'tank/photos';

export interface SyntheticOptions {
  /** Directory for the manifest and staging (made if missing). */
  dir: string;
  server: S3TestServer;
  bucket: string;
  /** Volumes of each stream of the chain: the full one first. */
  streams: number[];
  /** Stored bytes of each volume (default 64). */
  volumeBytes?: number;
  /** The plan's mode (default asap: every thaw is due now). */
  mode?: 'asap' | 'free';
  /** [restore] free_egress_gb for a free plan. */
  freeEgressGB?: number;
  log?: Logger;
}

export interface SyntheticRestore {
  ctx: ServiceContext;
  manifest: Manifest;
  dataset: string;
  /** Object keys (relative to the store's prefix) in chain order. */
  keys: string[];
  /** A step on the job as last saved (a new run's view). */
  step(): RestoreStep;
  job(): RestoreJob;
  close(): void;
}

/** Build the repository, put its objects, plan the restore (see the module comment). */
export async function syntheticRestore(o: SyntheticOptions): Promise<SyntheticRestore> {
  mkdirSync(o.dir, { recursive: true });
  const bytes = o.volumeBytes ?? 64;
  const config = configFromObject(
    {
      state_dir: o.dir,
      store: { url: `s3://${o.bucket}/repo`, endpoint: o.server.endpoint, region: o.server.region, path_style: true },
      restore: { staging_dir: join(o.dir, 'staging'), ...(o.freeEgressGB === undefined ? {} : { free_egress_gb: o.freeEgressGB, reserve_gb: 0 }) },
    } as never,
    join(o.dir, 'config.toml'),
  );
  const store = openStore(config.store, { credentials: o.server.credentials, retry: { retries: 3, minTimeoutMs: 10, maxTimeoutMs: 100 } });
  const ctx: ServiceContext = {
    config,
    store,
    zfs: null as never,
    btrfs: null as never,
    now: () => o.server.clock.now(),
    log: o.log ?? silentLogger,
    passphrase: null as never,
  };
  const manifest = Manifest.open(join(o.dir, 'manifest.db'));
  manifest.initRepository({ storeUrl: store.url, keyId: 'synthetic' });
  const keys: string[] = [];
  const t0 = o.server.clock.now().getTime() - 86_400_000 * (o.streams.length + 1);
  let from: { name: string; guid: bigint } | null = null;
  o.streams.forEach((count, i) => {
    const streamId = randomBytes(16).toString('hex');
    const at = new Date(t0 + i * 86_400_000);
    const to = { name: `s${i + 1}`, guid: 1000n + BigInt(i), createtxg: 10n + BigInt(i), creation: Math.floor(at.getTime() / 1000) };
    const volumes = Array.from({ length: count }, (_, index) => ({
      index,
      key: volumeKey(streamId, index),
      storageClass: 'DEEP_ARCHIVE',
      storedSize: bytes,
      partCount: 1,
      plaintextSize: bytes,
      plaintextSha256: '0'.repeat(64),
      uploadedAt: at,
    }));
    manifest.importCompleteStream({
      streamId,
      dataset: SYNTHETIC_DATASET,
      from,
      to,
      plaintextSize: bytes * count,
      storedSize: bytes * count,
      volumeSize: bytes,
      partSize: 5 * 1024 * 1024,
      startedAt: at,
      completedAt: at,
      volumes,
    });
    keys.push(...volumes.map((v) => v.key));
    from = { name: to.name, guid: to.guid };
  });
  // The objects, straight into the bucket (no retries, no lease: a test fixture).
  const raw = new S3Store(config.store, { credentials: o.server.credentials });
  try {
    const body = new Uint8Array(bytes);
    let next = 0;
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (next < keys.length) await raw.put(keys[next++]!, body, { storageClass: 'DEEP_ARCHIVE' });
      }),
    );
  } finally {
    raw.destroy();
  }
  const job = buildJob(ctx, manifest, { dataset: SYNTHETIC_DATASET, ...(o.mode === 'free' ? {} : { asap: true }) }, ctx.now());
  job.target = 'pool/restored';
  saveJob(manifest, job);
  const current = (): RestoreJob => loadJob(manifest, SYNTHETIC_DATASET)!;
  return {
    ctx,
    manifest,
    dataset: SYNTHETIC_DATASET,
    keys,
    job: current,
    step: () => new RestoreStep(ctx, manifest, null as never, null as never, current(), { dataset: SYNTHETIC_DATASET, target: 'pool/restored' }),
    close: () => {
      manifest.close();
      (store.s3 as S3Store | null)?.destroy();
    },
  };
}
