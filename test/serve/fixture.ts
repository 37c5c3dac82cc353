/**
 * A repository for `zbk serve`'s tests, made without ZFS: a config and a
 * local-directory store in a temp dir, pushes written the way a push writes
 * them (sealed parts uploaded, stream records stored, the manifest updated:
 * test/manifest/helpers.ts simulatePush), a failed push and a hook result
 * logged as the push service logs them, and a restore planned by the
 * restore plan service. The clock is fixed, so ages are known:
 *
 * - tank/photos: full two months ago, incrementals a month and 2 h ago: green;
 *   a restore of it is planned over several months (tiny allowance);
 * - tank/docs: pushed 30 h ago: amber against the default 26 h;
 * - tank/mail: pushed 5 h ago, then a push failed: red.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/config.js';
import { Manifest } from '../../src/manifest/manifest.js';
import { createContext, manifestPath, type ServiceContext } from '../../src/services/context.js';
import { passphraseSource } from '../../src/services/passphrase.js';
import { restorePlan } from '../../src/services/restore/index.js';
import { LocalStore } from '../../src/store/local-store.js';
import { simulatePush, snap, tempDir, testKeyring } from '../manifest/helpers.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

export interface ServeFixture {
  ctx: ServiceContext;
  dir: string;
  configPath: string;
  now: Date;
  cleanup(): void;
}

export async function serveFixture(): Promise<ServeFixture> {
  const tmp = tempDir();
  try {
    const storeDir = join(tmp.dir, 'store');
    const configPath = join(tmp.dir, 'config.toml');
    // A config file, so the CLI (`zbk serve --config`) reads the same repository.
    writeFileSync(configPath, `state_dir = ${JSON.stringify(join(tmp.dir, 'state'))}\n\n[store]\nurl = ${JSON.stringify(`file://${storeDir}`)}\n`);
    mkdirSync(join(tmp.dir, 'state'), { mode: 0o700 });
    const config = loadConfig(configPath);
    // Parts of a few bytes (simulatePush's), which a real local store refuses below 5 MiB.
    const store = new LocalStore(storeDir, { minPartSize: 1 });
    const now = new Date('2030-03-10T12:00:00Z');
    const ctx = createContext(config, passphraseSource(undefined), { store, now: () => now });
    const keyring = await testKeyring();
    const at = (msAgo: number): Date => new Date(now.getTime() - msAgo);
    const m = Manifest.open(manifestPath(config), { now: () => at(HOUR) });
    try {
      m.initRepository({ storeUrl: store.url, keyId: keyring.keyId });
      const p1 = snap('tank/photos@s1', 11n, 10n);
      const p2 = snap('tank/photos@s2', 12n, 20n);
      const p3 = snap('tank/photos@s3', 13n, 30n);
      await simulatePush(m, store, keyring, { dataset: 'tank/photos', from: null, to: p1, volumes: [1600, 1600], at: at(60 * DAY) });
      await simulatePush(m, store, keyring, { dataset: 'tank/photos', from: p1, to: p2, volumes: [400], at: at(30 * DAY) });
      await simulatePush(m, store, keyring, { dataset: 'tank/photos', from: p2, to: p3, volumes: [240], at: at(2 * HOUR) });
      await simulatePush(m, store, keyring, { dataset: 'tank/docs', from: null, to: snap('tank/docs@d1', 21n, 10n), volumes: [800], at: at(30 * HOUR) });
      await simulatePush(m, store, keyring, { dataset: 'tank/mail', from: null, to: snap('tank/mail@m1', 31n, 10n), volumes: [560], at: at(5 * HOUR) });
      // As src/services/push.ts logs them (at the manifest's clock: 1 h ago).
      m.logEvent('push-failed', 'tank/mail', { message: 'the store refused the upload: AccessDenied', code: 'STORE' });
      m.logEvent('hook-result', 'tank/mail', { stage: 'webhook', ok: false, what: 'webhook to hc-ping.com', detail: 'HTTP 503' });
      m.logEvent('hook-result', 'tank/photos', { stage: 'post-push', ok: true, what: 'hook /usr/local/bin/notify', detail: null });
    } finally {
      m.close();
    }
    // An allowance of about one volume a month spreads the restore over several months.
    await restorePlan(ctx, { dataset: 'tank/photos', freeEgressGB: 0.000_025, reserveGB: 0 });
    return { ctx, dir: tmp.dir, configPath, now, cleanup: tmp.cleanup };
  } catch (err) {
    tmp.cleanup();
    throw err;
  }
}
