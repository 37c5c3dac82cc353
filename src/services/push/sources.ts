/** The push port of a dataset: btrfs for a name that is an absolute path, ZFS otherwise (./source.ts). */
import type { Manifest } from '../../manifest/manifest.js';
import type { ServiceContext } from '../context.js';
import { BtrfsPushSource } from './btrfs-source.js';
import { sourceKindOf, type PushSource, type SourceListing } from './source.js';
import { ZfsPushSource } from './zfs-source.js';

/** The port of `dataset`, for a push holding the dataset's lock with `manifest` open. */
export function pushSourceFor(ctx: ServiceContext, dataset: string, manifest: Manifest, warn: (message: string) => void = (m) => ctx.log.warn(m)): PushSource {
  return sourceKindOf(dataset) === 'btrfs' ? new BtrfsPushSource(ctx.btrfs, manifest) : new ZfsPushSource(ctx.zfs, manifest, ctx.config, warn);
}

/** The reading part of the port of `dataset` ({@link SourceListing}), where no manifest is open or nothing may change. */
export function sourceListingFor(ctx: ServiceContext, dataset: string): SourceListing {
  return sourceKindOf(dataset) === 'btrfs' ? new BtrfsPushSource(ctx.btrfs, null) : new ZfsPushSource(ctx.zfs, null, ctx.config, (m) => ctx.log.warn(m));
}
