/**
 * `--limit-upload` (push) and `--limit-download` (restore run, verify
 * --deep): a bandwidth limit for this run that overrides `[upload] limit` /
 * `[restore] limit`; `off` disables a configured one. Parsed before the
 * config is read, so a bad value is a usage error (exit 2) whatever the
 * config says.
 */
import { Flags } from '@oclif/core';
import { BandwidthSyntaxError, parseBandwidth, type BandwidthLimit } from '../config/bandwidth.js';
import type { ZbkConfig } from '../config/config.js';
import { UsageError } from '../errors.js';

const SYNTAX = 'RATE is e.g. 2MiB/s, 500KiB/s or off (units are binary: KB = KiB), or a schedule by local time such as "08:00-23:00=2MiB/s, 23:00-08:00=off"';

export const limitUploadFlag = Flags.string({
  description: `Limit the bytes sent to the store for this run (all parallel parts together), overriding [upload] limit; "off" disables a configured limit. ${SYNTAX}.`,
  helpValue: 'RATE',
});

export const LIMIT_DOWNLOAD_DESCRIPTION = `Limit the bytes received from the store for this run (all parallel GETs together), overriding [restore] limit; "off" disables a configured limit. ${SYNTAX}.`;

export const limitDownloadFlag = Flags.string({ description: LIMIT_DOWNLOAD_DESCRIPTION, helpValue: 'RATE' });

/** The flag's limit, undefined when the flag is absent. @throws UsageError (exit 2) naming the flag */
export function parseLimitFlag(value: string | undefined, flag: string): BandwidthLimit | undefined {
  if (value === undefined) return undefined;
  try {
    return parseBandwidth(value);
  } catch (err) {
    if (err instanceof BandwidthSyntaxError) throw new UsageError(`--${flag}: ${err.message}`, 'BAD_LIMIT');
    throw err;
  }
}

/** Put a flag's limit in force over the config's (`off` included: it replaces a configured limit). */
export function applyLimit(config: ZbkConfig, direction: 'upload' | 'download', limit: BandwidthLimit | undefined): ZbkConfig {
  if (limit === undefined) return config;
  if (direction === 'upload') config.upload.limit = limit;
  else config.restore.limit = limit;
  return config;
}
