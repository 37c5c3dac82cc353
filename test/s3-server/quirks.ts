/**
 * Provider quirk sets the test server can emulate, named as zbk's provider
 * profiles (src/cost/providers, issue #20). Facts from
 * /work/shared/reference/providers.md; where it is silent the choice is
 * marked "decided" here and in test/s3-server/README.md.
 *
 * Kept as a small table of its own (not derived from src/cost/providers):
 * the server emulates what the provider's API does, which is the thing the
 * profiles are tested against, so the two must not share one source of
 * truth or a wrong profile would pass its own test.
 */

/**
 * What RestoreObject does:
 * - `tiered`: Days plus an optional Tier (AWS; Scaleway accepts a Tier — decided: accepted, it does not change the delay);
 * - `days-only`: Days; a request carrying a Tier element is refused with 400 InvalidArgument (OVH: "Days only, no Tier";
 *   the exact error code is not documented — decided);
 * - `none`: there is no restore step: every class is readable at once and RestoreObject answers
 *   501 NotImplemented (GCS XML API, decided) or, with `restoreAnswer: 'invalid-object-state'`,
 *   403 InvalidObjectState as for any non-archive object (hot S3 services, decided).
 */
export type RestoreSemantics = 'tiered' | 'days-only' | 'none';

export interface Quirks {
  /** Profile name, or 'aws' for the default (AWS S3 with every class). */
  name: string;
  /** Highest part number UploadPart accepts (AWS 10,000; Scaleway 1,000). */
  maxParts: number;
  /** Minimum size of every part but the last at Complete. */
  minPartSize: number;
  /** Maximum size of one part (AWS 5 GiB): a bigger part is refused with EntityTooLarge. */
  maxPartSize: number;
  restore: RestoreSemantics;
  /** With `restore: 'none'`: how RestoreObject answers. */
  restoreAnswer?: 'not-implemented' | 'invalid-object-state';
  /** Classes PutObject/CreateMultipartUpload accept; any other is 400 InvalidStorageClass. */
  storageClasses: ReadonlySet<string>;
  /** Classes whose GET needs a restored copy (empty with `restore: 'none'`). */
  archiveClasses: ReadonlySet<string>;
  /** ListObjectsV2 honours OptionalObjectAttributes=RestoreStatus. */
  restoreStatusInLists: boolean;
}

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

const AWS_CLASSES = new Set(['STANDARD', 'REDUCED_REDUNDANCY', 'STANDARD_IA', 'ONEZONE_IA', 'INTELLIGENT_TIERING', 'GLACIER', 'DEEP_ARCHIVE', 'GLACIER_IR', 'OUTPOSTS', 'SNOW', 'EXPRESS_ONEZONE']);
const AWS_ARCHIVE = new Set(['GLACIER', 'DEEP_ARCHIVE']);

/** AWS S3 as the server emulated before profiles: the default. */
export const AWS_QUIRKS: Quirks = {
  name: 'aws',
  maxParts: 10_000,
  minPartSize: 5 * MiB,
  maxPartSize: 5 * GiB,
  restore: 'tiered',
  storageClasses: AWS_CLASSES,
  archiveClasses: AWS_ARCHIVE,
  restoreStatusInLists: true,
};

export const PROFILE_NAMES = ['aws-deep-archive', 'aws-glacier', 'scaleway-glacier', 'ovh-cold-archive', 'gcs-archive', 's3-hot'] as const;
export type ProfileName = (typeof PROFILE_NAMES)[number];

/**
 * The quirk sets. Whether a listing honours OptionalObjectAttributes is
 * documented only for AWS: the others are emulated without it (decided:
 * the conservative case, where zbk falls back to HEAD).
 */
export const PROFILE_QUIRKS: Readonly<Record<ProfileName, Quirks>> = {
  'aws-deep-archive': { ...AWS_QUIRKS, name: 'aws-deep-archive' },
  'aws-glacier': { ...AWS_QUIRKS, name: 'aws-glacier' },
  'scaleway-glacier': {
    name: 'scaleway-glacier',
    maxParts: 1000,
    minPartSize: 5 * MiB,
    maxPartSize: 5 * GiB,
    restore: 'tiered',
    storageClasses: new Set(['STANDARD', 'ONEZONE_IA', 'GLACIER']),
    archiveClasses: new Set(['GLACIER']),
    restoreStatusInLists: false,
  },
  'ovh-cold-archive': {
    name: 'ovh-cold-archive',
    // Not in the reference: AWS's limits (decided).
    maxParts: 10_000,
    minPartSize: 5 * MiB,
    maxPartSize: 5 * GiB,
    restore: 'days-only',
    // Cold Archive maps to DEEP_ARCHIVE; STANDARD and STANDARD_IA are OVH's other S3 classes.
    storageClasses: new Set(['STANDARD', 'STANDARD_IA', 'DEEP_ARCHIVE']),
    archiveClasses: new Set(['DEEP_ARCHIVE']),
    restoreStatusInLists: false,
  },
  'gcs-archive': {
    name: 'gcs-archive',
    maxParts: 10_000,
    minPartSize: 5 * MiB,
    maxPartSize: 5 * GiB,
    restore: 'none',
    restoreAnswer: 'not-implemented',
    storageClasses: new Set(['STANDARD', 'NEARLINE', 'COLDLINE', 'ARCHIVE']),
    archiveClasses: new Set(),
    restoreStatusInLists: false,
  },
  's3-hot': {
    name: 's3-hot',
    maxParts: 10_000,
    minPartSize: 5 * MiB,
    maxPartSize: 5 * GiB,
    restore: 'none',
    restoreAnswer: 'invalid-object-state',
    storageClasses: new Set(['STANDARD']),
    archiveClasses: new Set(),
    restoreStatusInLists: false,
  },
};

/** The quirk set of a profile name; throws listing the names for an unknown one. */
export function quirksOf(name: string): Quirks {
  const q = (PROFILE_QUIRKS as Record<string, Quirks | undefined>)[name];
  if (!q) throw new Error(`unknown profile ${name} (one of ${PROFILE_NAMES.join(', ')})`);
  return q;
}
