/**
 * zbk's S3 test double: an in-process HTTP server on 127.0.0.1 reproducing
 * the AWS S3 + Glacier Deep Archive behaviour zbk relies on (see
 * /work/shared/reference/aws-facts.md), with fault injection, accounting,
 * a controllable clock and optional on-disk persistence. ListObjectsV2
 * returns RestoreStatus with `OptionalObjectAttributes=RestoreStatus` as
 * AWS does (only for objects with a restore running or a copy; counted in
 * `accounting.restoreStatusLists`), or ignores it (`restoreStatusInLists:
 * false`) as some S3-compatible services do.
 *
 * `profile` emulates one provider's quirks (quirks.ts, README.md): max
 * parts per upload, part size range, RestoreObject semantics (Days + Tier,
 * Days only, no restore step), the storage classes it accepts, and whether
 * listings carry RestoreStatus.
 *
 * Limitations (by design): SigV4 signatures are not verified (any
 * credentials are accepted, but a request must be signed or presigned unless
 * `anonymous` is set); CRC64NVME checksums are stored and echoed but not
 * verified; CopyObject/UploadPartCopy, versioning, ACLs and ListObjects v1
 * answer 501 NotImplemented.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counters, type Accounting } from './accounting.js';
import { TestClock } from './clock.js';
import { ServerState } from './context.js';
import { FaultInjector, type FaultRule } from './faults.js';
import { corrupt } from './object-handlers.js';
import { Persistence } from './persist.js';
import { RequestHandler } from './server.js';
import { validBucketName } from './bucket-handlers.js';
import { AWS_QUIRKS, quirksOf, type Quirks } from './quirks.js';
import { noSuchKey } from './errors.js';

export { TestClock } from './clock.js';
export type { Accounting } from './accounting.js';
export type { FaultKind, FaultRule } from './faults.js';
export type { S3Operation } from './operations.js';
export { AWS_QUIRKS, PROFILE_NAMES, PROFILE_QUIRKS, quirksOf, type ProfileName, type Quirks, type RestoreSemantics } from './quirks.js';

export interface S3TestServerOptions {
  /** 0 / absent = a random free port. */
  port?: number;
  /** Keep state on disk here (survives restarts); in memory when absent. */
  persistDir?: string;
  /**
   * The provider to emulate: a profile name (aws-deep-archive, aws-glacier,
   * scaleway-glacier, ovh-cold-archive, gcs-archive, s3-hot) or a quirk set;
   * default AWS S3 with every class. The options below override its values.
   */
  profile?: string | Quirks;
  /** Minimum size of every part but the last at Complete; default the profile's (5 MiB). */
  minPartSize?: number;
  /** Highest part number accepted; default the profile's (AWS 10,000, Scaleway 1,000). */
  maxParts?: number;
  /** Clock time a restore takes to complete; default 2000 ms. */
  restoreDelayMs?: number;
  clock?: TestClock;
  /** Buckets to create at start. */
  buckets?: string[];
  /** Accept unsigned requests (default false: they get 403 AccessDenied). */
  anonymous?: boolean;
  /** Random source for probabilistic faults (default Math.random), for reproducible tests. */
  random?: () => number;
  /**
   * ListObjectsV2 returns RestoreStatus when asked with
   * `OptionalObjectAttributes=RestoreStatus` (default true, as AWS); false
   * ignores the parameter, as an S3-compatible service without it would.
   * Default: the profile's.
   */
  restoreStatusInLists?: boolean;
}

export interface S3TestServer {
  /** `http://127.0.0.1:PORT` */
  endpoint: string;
  port: number;
  /** Always us-east-1. */
  region: string;
  /** Advertised test credentials (any are accepted). */
  credentials: { accessKeyId: string; secretAccessKey: string };
  clock: TestClock;
  accounting: Accounting;
  /** The provider quirks in force (profile plus overrides). */
  quirks: Quirks;
  addFault(rule: FaultRule): void;
  clearFaults(): void;
  createBucket(name: string): void;
  /** Test backdoor: flip the byte at `offset` of a stored object. */
  corruptObject(bucket: string, key: string, offset: number): void;
  /** Stop listening and cut open connections. */
  close(): Promise<void>;
}

/** Start a server on 127.0.0.1. */
export async function startS3TestServer(opts: S3TestServerOptions = {}): Promise<S3TestServer> {
  const clock = opts.clock ?? new TestClock();
  const counters = new Counters();
  const persist = new Persistence(opts.persistDir);
  const base = opts.profile === undefined ? AWS_QUIRKS : typeof opts.profile === 'string' ? quirksOf(opts.profile) : opts.profile;
  const quirks: Quirks = {
    ...base,
    minPartSize: opts.minPartSize ?? base.minPartSize,
    maxParts: opts.maxParts ?? base.maxParts,
    restoreStatusInLists: opts.restoreStatusInLists ?? base.restoreStatusInLists,
  };
  const state = new ServerState(persist.load(), persist, clock, counters, {
    region: 'us-east-1',
    minPartSize: quirks.minPartSize,
    restoreDelayMs: opts.restoreDelayMs ?? 2000,
    restoreStatusInLists: quirks.restoreStatusInLists,
    quirks,
  });
  const createBucket = (name: string): void => {
    if (!validBucketName(name)) throw new Error(`invalid bucket name ${name}`);
    state.ensureBucket(name);
  };
  for (const b of opts.buckets ?? []) createBucket(b);
  const faults = new FaultInjector(opts.random);
  const handler = new RequestHandler(state, faults, opts.anonymous === true);
  const server: Server = createServer((req, res) => {
    void handler.handle(req, res);
  });
  // Large uploads over slow test machines must not be cut by Node's default request timeout.
  server.requestTimeout = 0;
  server.headersTimeout = 60_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  let closed: Promise<void> | undefined;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    port,
    region: 'us-east-1',
    credentials: { accessKeyId: 'zbktest', secretAccessKey: 'zbktestsecret' },
    clock,
    accounting: counters,
    quirks,
    addFault: (rule) => faults.add(rule),
    clearFaults: () => faults.clear(),
    createBucket,
    corruptObject(bucket, key, offset) {
      const o = state.bucket(bucket).objects.get(key);
      if (!o) throw noSuchKey(key);
      corrupt(o, offset);
    },
    close() {
      closed ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closed;
    },
  };
}
