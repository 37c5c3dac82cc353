/**
 * A dataset named on the command line must be one zbk knows: configured
 * (`[[dataset]]`) or in the manifest (pushed, or a push started). A typo
 * otherwise reads as an empty, healthy-looking answer.
 */
import { UsageError } from '../errors.js';
import type { Manifest } from '../manifest/manifest.js';
import type { ServiceContext } from './context.js';

/** @throws UsageError 'UNKNOWN_DATASET' (exit 2) naming the configured and the pushed datasets. */
export function assertKnownDataset(ctx: ServiceContext, manifest: Manifest, dataset: string): void {
  const configured = ctx.config.datasets.map((d) => d.name);
  const pushed = manifest.datasets().map((d) => d.name);
  if (configured.includes(dataset) || pushed.includes(dataset)) return;
  const list = (names: string[]): string => (names.length ? names.join(', ') : 'none');
  const known = configured.length || pushed.length ? `configured: ${list(configured)}; pushed: ${list(pushed)}` : 'no dataset is configured or pushed yet';
  throw new UsageError(`${dataset} is neither a configured dataset nor one that was pushed (${known})`, 'UNKNOWN_DATASET');
}
