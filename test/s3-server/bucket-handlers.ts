/** Bucket operations and STS GetCallerIdentity. */
import { receiveSmallBody } from './body.js';
import type { Reply, RequestContext } from './context.js';
import { malformedXml, S3Error } from './errors.js';
import { child, children, parseXml, xmlDoc } from './xml.js';

const XML = { 'content-type': 'application/xml' };

/** S3 bucket naming rules (the subset that matters for tests). */
export function validBucketName(name: string): boolean {
  return /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(name) && !name.includes('..') && !/^\d+\.\d+\.\d+\.\d+$/.test(name);
}

export async function createBucket(ctx: RequestContext): Promise<Reply> {
  if (!validBucketName(ctx.bucket)) throw new S3Error(400, 'InvalidBucketName', 'The specified bucket is not valid.', [['BucketName', ctx.bucket]]);
  // A CreateBucketConfiguration body may name a region; it is read and ignored.
  await receiveSmallBody(ctx.req, ctx.onBytesIn);
  // us-east-1 answers 200 when the caller already owns the bucket.
  ctx.state.ensureBucket(ctx.bucket);
  return { status: 200, headers: { location: `/${ctx.bucket}` } };
}

export function headBucket(ctx: RequestContext): Reply {
  ctx.state.bucket(ctx.bucket);
  return { status: 200, headers: { 'x-amz-bucket-region': ctx.state.config.region } };
}

export function getBucketLocation(ctx: RequestContext): Reply {
  ctx.state.bucket(ctx.bucket);
  // us-east-1 is reported as an empty LocationConstraint.
  const region = ctx.state.config.region === 'us-east-1' ? '' : ctx.state.config.region;
  return {
    status: 200,
    headers: XML,
    body: `<?xml version="1.0" encoding="UTF-8"?>\n<LocationConstraint xmlns="http://s3.amazonaws.com/doc/2006-03-01/">${region}</LocationConstraint>`,
  };
}

export async function putBucketLifecycle(ctx: RequestContext): Promise<Reply> {
  const b = ctx.state.bucket(ctx.bucket);
  const body = await receiveSmallBody(ctx.req, ctx.onBytesIn);
  try {
    const lc = child(parseXml(body), 'LifecycleConfiguration');
    if (!lc || children(lc, 'Rule').length === 0) throw new Error('no rules');
  } catch {
    throw malformedXml();
  }
  b.lifecycle = body;
  ctx.state.persist.saveBucket(b);
  return { status: 200 };
}

export function getBucketLifecycle(ctx: RequestContext): Reply {
  const b = ctx.state.bucket(ctx.bucket);
  if (b.lifecycle === undefined) {
    throw new S3Error(404, 'NoSuchLifecycleConfiguration', 'The lifecycle configuration does not exist', [['BucketName', b.name]]);
  }
  return { status: 200, headers: XML, body: b.lifecycle };
}

export function deleteBucketLifecycle(ctx: RequestContext): Reply {
  const b = ctx.state.bucket(ctx.bucket);
  b.lifecycle = undefined;
  ctx.state.persist.saveBucket(b);
  return { status: 204 };
}

/** Fixed test identity. */
export const TEST_ACCOUNT = '000000000000';

export async function stsAction(ctx: RequestContext): Promise<Reply> {
  const form = new URLSearchParams(await receiveSmallBody(ctx.req, ctx.onBytesIn));
  const action = form.get('Action') ?? ctx.url.searchParams.get('Action');
  if (action !== 'GetCallerIdentity') {
    throw new S3Error(400, 'InvalidAction', `Could not find operation ${action ?? '(none)'} for version ${form.get('Version') ?? ''}`);
  }
  const ns = 'https://sts.amazonaws.com/doc/2011-06-15/';
  const body = xmlDoc(
    'GetCallerIdentityResponse',
    [
      ['GetCallerIdentityResult', [['Arn', `arn:aws:iam::${TEST_ACCOUNT}:user/zbktest`], ['UserId', 'AIDAZBKTESTUSER0000000'], ['Account', TEST_ACCOUNT]]],
      ['ResponseMetadata', [['RequestId', ctx.requestId]]],
    ],
    ns,
  );
  return { status: 200, headers: { 'content-type': 'text/xml' }, body };
}
