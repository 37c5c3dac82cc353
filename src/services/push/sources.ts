/** The push port of a dataset: btrfs for a name that is an absolute path, ZFS otherwise (./source.ts). */
import type { Manifest } from '../../manifest/manifest.js';
import type { ServiceContext } from '../context.js';
import { BtrfsPushSource } from './btrfs-source.js';
import { sourceKindOf, type PushSource } from './source.js';
import { ZfsPushSource } from './zfs-source.js';

/** Stands in for the manifest where a port is only asked to list (checks before the lock, reports). */
const NO_MANIFEST = new Proxy(
  {},
  {
    get(): never {
      throw new Error('internal: a source port made for listing was asked to change what zbk protects');
    },
  },
) as Manifest;

/**
 * The port of `dataset`. Without `manifest`, only its listing methods
 * (exists, listSnapshots, pushedIdentity, findLocal, resolveTarget,
 * resolveBase on btrfs) may be used.
 */
export function pushSourceFor(ctx: ServiceContext, dataset: string, manifest?: Manifest, warn: (message: string) => void = (m) => ctx.log.warn(m)): PushSource {
  const m = manifest ?? NO_MANIFEST;
  return sourceKindOf(dataset) === 'btrfs' ? new BtrfsPushSource(ctx.btrfs, m) : new ZfsPushSource(ctx.zfs, m, ctx.config, warn);
}
