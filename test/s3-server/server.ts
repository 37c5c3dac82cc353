/**
 * HTTP plumbing: auth check, routing, fault injection, accounting, error
 * documents and streaming of response bodies.
 *
 * Auth: requests must carry SigV4 (an `Authorization: AWS4-HMAC-SHA256 …`
 * header or presigned `X-Amz-Signature` query), but signatures are NOT
 * verified — any access key/secret is accepted. Requests without either get
 * 403 AccessDenied unless the server runs in anonymous mode.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import * as buckets from './bucket-handlers.js';
import { hdr, type Reply, type RequestContext, type ServerState } from './context.js';
import { accessDenied, S3Error } from './errors.js';
import type { Fault, FaultInjector } from './faults.js';
import * as mp from './multipart-handlers.js';
import * as objects from './object-handlers.js';
import { route, type S3Operation } from './operations.js';
import { errorDoc } from './xml.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function dispatch(ctx: RequestContext): Reply | Promise<Reply> {
  switch (ctx.op) {
    case 'PutObject':
      return objects.putObject(ctx);
    case 'GetObject':
      return objects.getOrHeadObject(ctx, false);
    case 'HeadObject':
      return objects.getOrHeadObject(ctx, true);
    case 'DeleteObject':
      return objects.deleteObject(ctx);
    case 'DeleteObjects':
      return objects.deleteObjects(ctx);
    case 'ListObjectsV2':
      return objects.listObjectsV2(ctx);
    case 'RestoreObject':
      return objects.restoreObject(ctx);
    case 'CreateMultipartUpload':
      return mp.createMultipartUpload(ctx);
    case 'UploadPart':
      return mp.uploadPart(ctx);
    case 'ListParts':
      return mp.listParts(ctx);
    case 'CompleteMultipartUpload':
      return mp.completeMultipartUpload(ctx);
    case 'AbortMultipartUpload':
      return mp.abortMultipartUpload(ctx);
    case 'ListMultipartUploads':
      return mp.listMultipartUploads(ctx);
    case 'CreateBucket':
      return buckets.createBucket(ctx);
    case 'HeadBucket':
      return buckets.headBucket(ctx);
    case 'GetBucketLocation':
      return buckets.getBucketLocation(ctx);
    case 'GetBucketLifecycleConfiguration':
      return buckets.getBucketLifecycle(ctx);
    case 'PutBucketLifecycleConfiguration':
      return buckets.putBucketLifecycle(ctx);
    case 'DeleteBucketLifecycle':
      return buckets.deleteBucketLifecycle(ctx);
    case 'GetCallerIdentity':
      return buckets.stsAction(ctx);
  }
}

function isSigned(req: IncomingMessage, url: URL): boolean {
  return (hdr(req, 'authorization') ?? '').startsWith('AWS4-HMAC-SHA256 ') || url.searchParams.has('X-Amz-Signature');
}

/** Does this request carry a body (whose middle a 'reset' fault cuts)? */
const hasBody = (req: IncomingMessage): boolean => Number(hdr(req, 'content-length') ?? '0') > 0 || hdr(req, 'transfer-encoding') !== undefined;

/** Read roughly half of the request body, then drop the connection without answering. */
async function resetMidBody(req: IncomingMessage, onBytes: (n: number) => void): Promise<void> {
  const total = Number(hdr(req, 'content-length') ?? '0');
  const cut = total > 0 ? Math.max(1, Math.floor(total / 2)) : 1;
  let seen = 0;
  await new Promise<void>((resolve) => {
    const stop = (): void => {
      req.off('data', onData);
      req.socket.destroy();
      resolve();
    };
    const onData = (chunk: Buffer): void => {
      seen += chunk.length;
      onBytes(chunk.length);
      if (seen >= cut) stop();
    };
    req.on('data', onData);
    req.once('end', stop);
    req.once('error', stop);
  });
}

/** Handles one HTTP request end to end. */
export class RequestHandler {
  constructor(
    private readonly state: ServerState,
    private readonly faults: FaultInjector,
    private readonly anonymous: boolean,
  ) {}

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const requestId = randomBytes(8).toString('hex').toUpperCase();
    res.setHeader('x-amz-request-id', requestId);
    res.setHeader('x-amz-id-2', requestId);
    const url = new URL(req.url ?? '/', `http://${hdr(req, 'host') ?? '127.0.0.1'}`);
    const method = req.method ?? 'GET';
    let op: S3Operation | undefined;
    let resource = url.pathname;
    try {
      const r = route(method, hdr(req, 'host'), url);
      op = r.op;
      resource = r.key ? `/${r.bucket}/${r.key}` : `/${r.bucket}`;
      this.state.counters.request(op);
      if (!this.anonymous && !isSigned(req, url)) throw accessDenied();
      const faults = this.faults.decide(op);
      const ctx: RequestContext = {
        req,
        url,
        op,
        bucket: r.bucket,
        key: r.key,
        requestId,
        state: this.state,
        onBytesIn: (n) => (this.state.counters.bytesIn += n),
      };
      let resetBody = false;
      for (const f of faults) {
        if (f.kind === 'latency') {
          await sleep(f.latencyMs);
          continue;
        }
        if (f.kind === 'reset') {
          if (op === 'GetObject') {
            resetBody = true;
            continue;
          }
          if (hasBody(req)) await resetMidBody(req, ctx.onBytesIn);
          else req.socket.destroy();
          return;
        }
        await this.drain(req);
        throw faultError(f);
      }
      const reply = await dispatch(ctx);
      if (reply.storageClass) this.state.counters.requestClass(op, reply.storageClass);
      await this.send(res, reply, resetBody);
    } catch (e) {
      if (req.socket.destroyed) return;
      const err = e instanceof S3Error ? e : new S3Error(500, 'InternalError', 'We encountered an internal error. Please try again.');
      if (!(e instanceof S3Error)) process.stderr.write(`s3-test-server: ${op ?? method} ${url.pathname}: ${(e as Error).stack ?? String(e)}\n`);
      // The body may not have been read (e.g. auth failure): read it so the client sees the answer, not EPIPE.
      await this.drain(req);
      this.sendError(res, err, method, resource, requestId);
    }
  }

  private async drain(req: IncomingMessage): Promise<void> {
    if (req.complete || req.readableEnded) return;
    req.resume();
    await new Promise<void>((r) => {
      const done = (): void => {
        req.off('end', done);
        req.off('close', done);
        r();
      };
      req.once('end', done);
      req.once('close', done);
    });
  }

  private sendError(res: ServerResponse, err: S3Error, method: string, resource: string, requestId: string): void {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    res.statusCode = err.status;
    if (err.code === 'SlowDown' || err.status >= 500) res.setHeader('retry-after', '0');
    if (method === 'HEAD') {
      res.end();
      return;
    }
    const body = errorDoc(err.code, err.message, [...err.extra, ['Resource', resource], ['RequestId', requestId], ['HostId', requestId]]);
    res.setHeader('content-type', 'application/xml');
    res.setHeader('content-length', Buffer.byteLength(body));
    res.end(body);
  }

  private async send(res: ServerResponse, reply: Reply, resetMidway: boolean): Promise<void> {
    res.statusCode = reply.status;
    for (const [k, v] of Object.entries(reply.headers ?? {})) res.setHeader(k, v);
    if (reply.body === undefined) {
      if (!res.hasHeader('content-length') || reply.status === 204) {
        if (reply.status !== 204) res.setHeader('content-length', 0);
      }
      res.end();
      return;
    }
    if (typeof reply.body === 'string') {
      res.setHeader('content-length', Buffer.byteLength(reply.body));
      res.end(reply.body);
      return;
    }
    await this.stream(res, reply.body, reply.egress === true, resetMidway);
  }

  /** Stream a body with back-pressure, counting egress; optionally cut the connection halfway. */
  private async stream(res: ServerResponse, body: Readable, egress: boolean, resetMidway: boolean): Promise<void> {
    const total = Number(res.getHeader('content-length') ?? 0);
    const cutAt = resetMidway ? Math.max(1, Math.floor(total / 2)) : Infinity;
    let sent = 0;
    const count = (n: number): void => {
      sent += n;
      if (egress) this.state.counters.out(n, this.state.clock.nowMs());
    };
    try {
      for await (const c of body) {
        let chunk = c as Buffer;
        if (res.destroyed) break;
        if (sent + chunk.length >= cutAt) {
          chunk = chunk.subarray(0, cutAt - sent);
          await new Promise<void>((r) => res.write(chunk, () => r()));
          count(chunk.length);
          res.socket?.destroy();
          return;
        }
        count(chunk.length);
        if (!res.write(chunk)) await new Promise<void>((r) => {
          const done = (): void => {
            res.off('drain', done);
            res.off('close', done);
            r();
          };
          res.once('drain', done);
          res.once('close', done);
        });
      }
      res.end();
    } finally {
      body.destroy();
    }
  }
}

function faultError(f: Fault): S3Error {
  switch (f.kind) {
    case 'slow-down':
      return new S3Error(503, 'SlowDown', 'Please reduce your request rate.');
    case 'access-denied':
      return accessDenied();
    default:
      return new S3Error(500, 'InternalError', 'We encountered an internal error. Please try again.');
  }
}
