/** The push port of a dataset: btrfs for a name that is an absolute path, ZFS otherwise (./source.ts). */
import type { Manifest } from '../../manifest/manifest.js';
import type { ServiceContext } from '../context.js';
import { BtrfsPushSource } from './btrfs-source.js';
import { sourceKindOf, type PushSource } from './source.js';
import { ZfsPushSource } from './zfs-source.js';

export function pushSourceFor(ctx: ServiceContext, manifest: Manifest, dataset: string, warn: (message: string) => void): PushSource {
  return sourceKindOf(dataset) === 'btrfs' ? new BtrfsPushSource(ctx.btrfs, manifest) : new ZfsPushSource(ctx.zfs, manifest, ctx.config, warn);
}
