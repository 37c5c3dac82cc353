/**
 * zbk as a library. The CLI (`commands/`) is a thin layer over these
 * services; programs can call them directly with their own context.
 *
 *   import { loadConfig, createContext, passphraseSource, push, status } from 'zbk';
 *   const config = loadConfig('/etc/zbk/config.toml');
 *   const ctx = createContext(config, passphraseSource('/root/.zbk-pass'));
 *   const result = await push(ctx, { datasets: ['tank/photos'] });
 */
export { ExitCode, ZbkError, exitCodeOf } from './errors.js';
export { loadConfig, resolveConfigPath, configFromObject, type ZbkConfig } from './config/config.js';
export { createContext, openKeyring, openManifest, type ServiceContext, type ContextOverrides, type Logger } from './services/context.js';
export { passphraseSource, type PassphraseSource } from './services/passphrase.js';
export { init, type InitOptions, type InitResult } from './services/init.js';
export { push, PushService, type PushOptions, type PushResult, type DatasetPushResult, type PushProgress } from './services/push.js';
export { status, type StatusResult, type DatasetStatus } from './services/status.js';
export type { ObjectStore, ObjectInfo, RestoreState } from './store/object-store.js';
export { openStore } from './store/open-store.js';
export { Zfs } from './zfs/zfs.js';
export { Manifest } from './manifest/manifest.js';
