/** Request routing: which S3 (or STS) operation a request is. */
import { S3Error } from './errors.js';

/** Operation names as AWS spells them (accounting and fault rules use these). */
export type S3Operation =
  | 'PutObject'
  | 'GetObject'
  | 'HeadObject'
  | 'DeleteObject'
  | 'DeleteObjects'
  | 'ListObjectsV2'
  | 'CreateMultipartUpload'
  | 'UploadPart'
  | 'ListParts'
  | 'CompleteMultipartUpload'
  | 'AbortMultipartUpload'
  | 'ListMultipartUploads'
  | 'RestoreObject'
  | 'CreateBucket'
  | 'HeadBucket'
  | 'GetBucketLifecycleConfiguration'
  | 'PutBucketLifecycleConfiguration'
  | 'DeleteBucketLifecycle'
  | 'GetBucketLocation'
  | 'GetCallerIdentity';

export interface Route {
  op: S3Operation;
  bucket: string;
  key: string;
}

const BUCKET_HOST = /^([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])\.localhost$/;

/**
 * Find bucket and key: virtual-host style when the Host is `<bucket>.localhost`,
 * otherwise path style `/bucket/key`.
 */
export function locate(host: string | undefined, pathname: string): { bucket: string; key: string } {
  const hostname = (host ?? '').replace(/:\d+$/, '');
  const vhost = BUCKET_HOST.exec(hostname);
  const decode = (s: string): string => {
    try {
      return decodeURIComponent(s);
    } catch {
      throw new S3Error(400, 'InvalidURI', "Couldn't parse the specified URI.");
    }
  };
  if (vhost) return { bucket: vhost[1], key: decode(pathname.slice(1)) };
  const rest = pathname.slice(1);
  const slash = rest.indexOf('/');
  if (slash === -1) return { bucket: decode(rest), key: '' };
  return { bucket: decode(rest.slice(0, slash)), key: decode(rest.slice(slash + 1)) };
}

/** Map method + query to an operation. Throws NotImplemented for anything else. */
export function route(method: string, host: string | undefined, url: URL): Route {
  const q = url.searchParams;
  const { bucket, key } = locate(host, url.pathname);
  const notImpl = (): S3Error => new S3Error(501, 'NotImplemented', `${method} ${url.pathname}${url.search} is not implemented by the zbk test server`);
  if (bucket === '') {
    if (method === 'POST') return { op: 'GetCallerIdentity', bucket, key };
    throw notImpl();
  }
  if (key === '') {
    switch (method) {
      case 'PUT':
        if (q.has('lifecycle')) return { op: 'PutBucketLifecycleConfiguration', bucket, key };
        if ([...q.keys()].length === 0) return { op: 'CreateBucket', bucket, key };
        break;
      case 'HEAD':
        return { op: 'HeadBucket', bucket, key };
      case 'GET':
        if (q.has('location')) return { op: 'GetBucketLocation', bucket, key };
        if (q.has('lifecycle')) return { op: 'GetBucketLifecycleConfiguration', bucket, key };
        if (q.has('uploads')) return { op: 'ListMultipartUploads', bucket, key };
        if (q.get('list-type') === '2') return { op: 'ListObjectsV2', bucket, key };
        break;
      case 'POST':
        if (q.has('delete')) return { op: 'DeleteObjects', bucket, key };
        break;
      case 'DELETE':
        if (q.has('lifecycle')) return { op: 'DeleteBucketLifecycle', bucket, key };
        break;
    }
    throw notImpl();
  }
  switch (method) {
    case 'PUT':
      if (q.has('uploadId')) return { op: 'UploadPart', bucket, key };
      return { op: 'PutObject', bucket, key };
    case 'GET':
      if (q.has('uploadId')) return { op: 'ListParts', bucket, key };
      return { op: 'GetObject', bucket, key };
    case 'HEAD':
      return { op: 'HeadObject', bucket, key };
    case 'DELETE':
      if (q.has('uploadId')) return { op: 'AbortMultipartUpload', bucket, key };
      return { op: 'DeleteObject', bucket, key };
    case 'POST':
      if (q.has('uploads')) return { op: 'CreateMultipartUpload', bucket, key };
      if (q.has('uploadId')) return { op: 'CompleteMultipartUpload', bucket, key };
      if (q.has('restore')) return { op: 'RestoreObject', bucket, key };
      break;
  }
  throw notImpl();
}
