/**
 * The provider profiles (one module each in this folder) and the functions
 * that turn one into a USD price table and a part size.
 */
import { ConfigError } from '../../errors.js';
import { applyPriceOverrides, cloneTable, type PriceTable } from '../prices.js';
import { awsDeepArchive } from './aws-deep-archive.js';
import { awsGlacier } from './aws-glacier.js';
import { gcsArchive } from './gcs-archive.js';
import { ovhColdArchive } from './ovh-cold-archive.js';
import { s3Hot } from './s3-hot.js';
import { scalewayGlacier } from './scaleway-glacier.js';
import type { MultipartLimits, ProviderProfile } from './types.js';

export type { MultipartLimits, ProfilePrices, ProviderProfile, RestoreSemantics } from './types.js';
export { RESTORE_SEMANTICS } from './types.js';

const PROFILES: readonly ProviderProfile[] = [awsDeepArchive, awsGlacier, scalewayGlacier, ovhColdArchive, gcsArchive, s3Hot];

/** `[store] provider` when absent: existing configs behave exactly as before profiles existed. */
export const DEFAULT_PROVIDER = 'aws-deep-archive';
export const PROVIDER_NAMES: readonly string[] = PROFILES.map((p) => p.name);

export function isProviderName(name: string): boolean {
  return PROVIDER_NAMES.includes(name);
}

/** The profile called `name`. @throws ConfigError (one line, listing the names) for an unknown one. */
export function providerProfile(name: string): ProviderProfile {
  const p = PROFILES.find((x) => x.name === name);
  if (!p) throw new ConfigError(unknownProviderMessage(name));
  return p;
}

export function unknownProviderMessage(name: string): string {
  return `unknown provider ${JSON.stringify(name)} (known: ${PROVIDER_NAMES.join(', ')})`;
}

/** Every money field of a table multiplied by `rate` (EUR → USD); sizes, days and rate classes untouched. */
function convert(t: PriceTable, rate: number): PriceTable {
  const x = cloneTable(t);
  const m = (v: number): number => v * rate;
  x.deepArchiveGBMonth = m(t.deepArchiveGBMonth);
  x.glacierGBMonth = m(t.glacierGBMonth);
  x.glacierIRGBMonth = m(t.glacierIRGBMonth);
  x.standardIAGBMonth = m(t.standardIAGBMonth);
  x.standardGBMonth = m(t.standardGBMonth);
  for (const k of Object.keys(x.putPer1000) as (keyof PriceTable['putPer1000'])[]) x.putPer1000[k] = m(t.putPer1000[k]);
  x.getPer1000 = m(t.getPer1000);
  x.listPer1000 = m(t.listPer1000);
  x.restore = { Standard: { per1000: m(t.restore.Standard.per1000), perGB: m(t.restore.Standard.perGB) }, Bulk: { per1000: m(t.restore.Bulk.per1000), perGB: m(t.restore.Bulk.perGB) } };
  x.retrievalPerGB = m(t.retrievalPerGB);
  x.egressTiers = t.egressTiers.map((e) => ({ uptoGB: e.uptoGB, perGB: m(e.perGB) }));
  return x;
}

/**
 * The USD price table of `profile` in `region`: EUR prices converted at
 * `[prices] eur_to_usd` (else the profile's stated rate), then every other
 * `[prices]` key applied on top, in USD. For `aws-deep-archive` this is
 * exactly `priceTable(region, overrides)`.
 */
export function profilePriceTable(profile: ProviderProfile, region: string, overrides: Record<string, number> = {}): PriceTable {
  const base: PriceTable = {
    ...profile.prices,
    region,
    overridden: [],
    restoreSemantics: profile.restore.semantics,
    ...(profile.restore.leadDays === undefined ? {} : { restoreLeadDays: profile.restore.leadDays }),
  };
  let t = base;
  if (profile.currency === 'EUR') {
    const rate = overrides.eur_to_usd ?? profile.eurToUsd;
    if (rate === undefined || !Number.isFinite(rate) || rate <= 0) throw new ConfigError('prices.eur_to_usd: must be a positive number');
    t = convert(base, rate);
    t.source = `${t.source}; EUR converted at ${rate} USD/EUR`;
  }
  return applyPriceOverrides(t, region, overrides);
}

/** The region of a profile when the config names none. */
export function defaultRegion(profile: ProviderProfile): string {
  return profile.regions[0] ?? 'us-east-1';
}

/** The profile's endpoint for `region`, if it is not AWS's own. */
export function profileEndpoint(profile: ProviderProfile, region: string): string | undefined {
  return profile.endpoint?.replace('{region}', region);
}

const MiB = 1024 * 1024;

/**
 * The smallest part size (whole MiB, within the provider's range) that
 * cuts a `volumeSize` volume into at most `limits.maxParts` parts:
 * ceil(volumeSize / maxParts) rounded up to a MiB.
 */
export function minPartSizeFor(volumeSize: number, limits: MultipartLimits): number {
  const need = Math.ceil(Math.ceil(volumeSize / limits.maxParts) / MiB) * MiB;
  return Math.max(limits.minPartSize, need);
}

/**
 * The part size a push uses. An unset `part_size` is the default raised to
 * {@link minPartSizeFor} when the default would need more parts than the
 * provider allows (Scaleway: 1,000); a configured one that would is refused
 * (the user asked for that size: zbk does not silently change it).
 */
export function choosePartSize(
  volumeSize: number,
  configured: number | undefined,
  defaultPartSize: number,
  limits: MultipartLimits,
): { partSize: number; raised: boolean } {
  const min = minPartSizeFor(volumeSize, limits);
  if (configured !== undefined) {
    if (configured < limits.minPartSize) throw new ConfigError(`upload.part_size must be at least ${limits.minPartSize / MiB}MiB (S3 minimum part size)`);
    if (configured > limits.maxPartSize) throw new ConfigError(`upload.part_size must be at most ${limits.maxPartSize / MiB}MiB (the provider's largest part)`);
    if (Math.ceil(volumeSize / configured) > limits.maxParts) {
      throw new ConfigError(
        `upload.volume_size / upload.part_size exceeds the provider's ${limits.maxParts.toLocaleString('en-US')}-part limit: raise part_size to at least ${min / MiB}MiB`,
      );
    }
    return { partSize: configured, raised: false };
  }
  return defaultPartSize >= min ? { partSize: defaultPartSize, raised: false } : { partSize: min, raised: true };
}

/** The USD price table of a loaded `[store]` (its provider, default aws-deep-archive) with its `[prices]` overrides. */
export function configPriceTable(store: { provider?: string; region: string }, overrides: Record<string, number> = {}): PriceTable {
  return profilePriceTable(providerProfile(store.provider ?? DEFAULT_PROVIDER), store.region, overrides);
}
