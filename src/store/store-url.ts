/** Parsing of store URLs (`s3://bucket/prefix`, `file:///dir`). Pure. */
import { fileURLToPath } from 'node:url';
import { ConfigError } from '../errors.js';

export type ParsedStoreUrl =
  | { kind: 's3'; bucket: string; /** '' or ends with '/' */ prefix: string }
  | { kind: 'local'; dir: string };

/**
 * Parse a store URL. The S3 prefix is normalised to '' or `a/b/`.
 * @throws ConfigError for anything else, a bad bucket name, a relative
 *   file path, or a prefix with `.`/`..` segments.
 */
export function parseStoreUrl(url: string): ParsedStoreUrl {
  const s3 = /^s3:\/\/([^/]+)(?:\/(.*))?$/.exec(url);
  if (s3) {
    const bucket = s3[1]!;
    if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) throw new ConfigError(`store url: invalid S3 bucket name: ${bucket}`);
    const segs = (s3[2] ?? '').split('/').filter((x) => x !== '');
    if (segs.some((x) => x === '.' || x === '..')) throw new ConfigError('store url: the S3 prefix must not contain "." or ".." segments');
    return { kind: 's3', bucket, prefix: segs.length ? `${segs.join('/')}/` : '' };
  }
  if (url.startsWith('file:///')) {
    let dir: string;
    try {
      dir = fileURLToPath(url);
    } catch {
      throw new ConfigError(`store url: not a valid file URL: ${url}`);
    }
    return { kind: 'local', dir: dir.length > 1 ? dir.replace(/\/+$/, '') : dir };
  }
  throw new ConfigError(`store url must be s3://bucket[/prefix] or file:///absolute/dir, got ${url}`);
}
