/**
 * The one way the rest of zbk opens a store: from `StoreConfig` to a
 * retry-wrapped `ObjectStore`. S3-only administration (lifecycle rule,
 * bucket region) is reachable through `s3` for init and doctor.
 */
import type { RetryConfig, StoreConfig } from '../config/config.js';
import type { IdentityProvider, ObjectStore } from './object-store.js';
import { LocalStore } from './local-store.js';
import { RetryingStore, type RetryEvent } from './retry-store.js';
import { retryPolicy, type RetryMode } from './retry-mode.js';
import { S3Store, type S3Credentials } from './s3-store.js';
import { parseStoreUrl } from './store-url.js';
import { DEFAULT_PROVIDER, providerProfile } from '../cost/providers/index.js';

export { parseStoreUrl, type ParsedStoreUrl } from './store-url.js';
export type { RetryEvent } from './retry-store.js';
export { retryModeFromEnv, type RetryMode } from './retry-mode.js';

export interface OpenStoreOptions {
  /** Default: 8 retries, 500 ms → 30 s (the config defaults). */
  retry?: RetryConfig;
  /** `quick`: an unreachable store that never answered fails within seconds (interactive runs); default `patient`. See retry-mode.ts. */
  retryMode?: RetryMode;
  /** Explicit S3 credentials (tests); otherwise the standard AWS credential chain. */
  credentials?: S3Credentials;
  /** Called before each retry of a transient failure (progress/logging; carries no secrets). */
  onRetry?: (event: RetryEvent) => void;
  /** Minimum part size the local store enforces (default 5 MiB, like S3). */
  localMinPartSize?: number;
}

export type OpenedStore = ObjectStore &
  IdentityProvider & {
    readonly kind: 's3' | 'local';
    /** The unwrapped S3 store (bucket administration), or null for a local store. */
    readonly s3: S3Store | null;
  };

const DEFAULT_RETRY: RetryConfig = { retries: 8, minTimeoutMs: 500, maxTimeoutMs: 30_000 };

class OpenedRetryingStore extends RetryingStore {
  constructor(
    inner: ObjectStore & Partial<IdentityProvider>,
    retry: RetryConfig,
    onRetry: ((e: RetryEvent) => void) | undefined,
    readonly kind: 's3' | 'local',
    readonly s3: S3Store | null,
    firstContact?: RetryConfig,
  ) {
    super(inner, retry, { ...(onRetry ? { onRetry } : {}), ...(firstContact ? { firstContact } : {}) });
  }
}

/**
 * Open the store `cfg.url` names, wrapped in `RetryingStore`. No I/O happens
 * here (a missing bucket or directory shows on first use).
 * @throws ConfigError for a URL that is neither s3:// nor file:///.
 */
export function openStore(cfg: StoreConfig, opts: OpenStoreOptions = {}): OpenedStore {
  const parsed = parseStoreUrl(cfg.url);
  const policy = retryPolicy(opts.retryMode ?? 'patient', opts.retry ?? DEFAULT_RETRY);
  const retry = policy.retry;
  if (parsed.kind === 'local') {
    const local = new LocalStore(parsed.dir, opts.localMinPartSize === undefined ? {} : { minPartSize: opts.localMinPartSize });
    return new OpenedRetryingStore(local, retry, opts.onRetry, 'local', null);
  }
  // How a thaw is asked for (Days + Tier, Days only, or no restore step) is the provider's (src/cost/providers).
  const restoreMode = providerProfile(cfg.provider ?? DEFAULT_PROVIDER).restore.semantics;
  const s3 = new S3Store(cfg, { connectTimeoutMs: policy.connectTimeoutMs, restoreMode, ...(opts.credentials ? { credentials: opts.credentials } : {}) });
  return new OpenedRetryingStore(s3, retry, opts.onRetry, 's3', s3, policy.firstContact);
}
