/**
 * Receiving request bodies: optional aws-chunked decoding, checksum
 * verification (Content-MD5, x-amz-content-sha256, x-amz-checksum-* headers
 * and trailers) and streaming into a sink. On any failure the sink is
 * discarded, so nothing is stored.
 */
import type { IncomingMessage } from 'node:http';
import { Transform, type Readable } from 'node:stream';
import { AwsChunkedDecoder } from './aws-chunked.js';
import { algorithmOfHeader, headerName, MultiHasher, VERIFIABLE, type ChecksumAlgorithm } from './checksums.js';
import { badDigest, S3Error } from './errors.js';
import type { BlobRef } from './model.js';
import { MemorySink, type BlobSink } from './persist.js';

export interface ReceivedBody {
  blob: BlobRef;
  size: number;
  md5: Buffer;
  /** Verified checksums (base64) by algorithm, as the client declared them. */
  checksums: Record<string, string>;
}

const header = (req: IncomingMessage, name: string): string | undefined => {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
};

/** True when the body uses aws-chunked framing. */
function isAwsChunked(req: IncomingMessage): boolean {
  const enc = header(req, 'content-encoding') ?? '';
  const sha = header(req, 'x-amz-content-sha256') ?? '';
  return enc.split(',').some((e) => e.trim() === 'aws-chunked') || sha.startsWith('STREAMING-');
}

/**
 * Stream the request body into `sink`, verify every declared checksum and
 * commit. `onRawBytes` sees wire bytes (for accounting and fault injection).
 */
export async function receiveBody(req: IncomingMessage, sink: BlobSink, onRawBytes: (n: number) => void): Promise<ReceivedBody> {
  const declared = new Map<ChecksumAlgorithm, string>();
  for (const [name, value] of Object.entries(req.headers)) {
    const alg = algorithmOfHeader(name);
    if (alg && typeof value === 'string') declared.set(alg, value);
  }
  const chunked = isAwsChunked(req);
  const trailerNames = (header(req, 'x-amz-trailer') ?? '').split(',').map((s) => s.trim().toLowerCase()).filter(Boolean);
  const trailerAlgs = trailerNames.map(algorithmOfHeader).filter((a): a is ChecksumAlgorithm => a !== undefined);
  const contentSha = header(req, 'x-amz-content-sha256');
  const wantSha256Hex = contentSha !== undefined && /^[0-9a-f]{64}$/i.test(contentSha);
  const hasher = new MultiHasher([...declared.keys(), ...trailerAlgs, ...(wantSha256Hex ? (['SHA256'] as const) : [])]);

  const counter = new Transform({
    transform(chunk: Buffer, _e, cb) {
      onRawBytes(chunk.length);
      cb(null, chunk);
    },
  });
  let source: Readable = req.pipe(counter);
  let decoder: AwsChunkedDecoder | undefined;
  if (chunked) {
    decoder = new AwsChunkedDecoder();
    source = source.pipe(decoder);
  }
  // A client that goes away mid-body must fail the loop below, not hang it.
  const onAborted = (): void => void source.destroy(new Error('client aborted the request'));
  const onError = (e: Error): void => void source.destroy(e);
  const onClose = (): void => {
    if (!req.complete) source.destroy(new Error('connection closed mid-body'));
  };
  req.once('aborted', onAborted);
  req.once('error', onError);
  // Keep-alive sockets serve many requests: this listener must not outlive the request.
  const socket = req.socket;
  socket.once('close', onClose);
  decoder?.once('error', (e) => counter.destroy(e));

  try {
    try {
      for await (const chunk of source) {
        const buf = chunk as Buffer;
        hasher.update(buf);
        await sink.write(buf);
      }
    } catch (e) {
      if (chunked && req.complete) throw new S3Error(400, 'IncompleteBody', `Malformed aws-chunked body: ${(e as Error).message}`);
      throw e;
    }
    const { md5, checksums } = hasher.finish();
    const decodedLen = header(req, 'x-amz-decoded-content-length');
    if (chunked && decodedLen !== undefined && Number(decodedLen) !== hasher.length) {
      throw new S3Error(400, 'IncompleteBody', 'You did not provide the number of bytes specified by the x-amz-decoded-content-length HTTP header');
    }
    const contentMd5 = header(req, 'content-md5');
    if (contentMd5 !== undefined && contentMd5 !== md5.toString('base64')) {
      throw badDigest('The Content-MD5 you specified did not match what we received.');
    }
    if (wantSha256Hex && Buffer.from(checksums.get('SHA256') ?? '', 'base64').toString('hex') !== contentSha?.toLowerCase()) {
      throw new S3Error(400, 'XAmzContentSHA256Mismatch', "The provided 'x-amz-content-sha256' header does not match what was computed.");
    }
    const verified: Record<string, string> = {};
    const expect = new Map(declared);
    for (const alg of trailerAlgs) {
      const v = decoder?.trailers.get(headerName(alg));
      if (v === undefined) throw new S3Error(400, 'MalformedTrailerError', `The request did not contain the declared trailer ${headerName(alg)}`);
      expect.set(alg, v);
    }
    for (const [alg, value] of expect) {
      if (VERIFIABLE.includes(alg) && checksums.get(alg) !== value) {
        throw badDigest(`The ${alg} you specified did not match the calculated checksum.`);
      }
      verified[alg] = value;
    }
    const blob = await sink.commit();
    return { blob, size: hasher.length, md5, checksums: verified };
  } catch (e) {
    sink.discard();
    throw e;
  } finally {
    req.off('aborted', onAborted);
    req.off('error', onError);
    socket.off('close', onClose);
  }
}

/** Read a small body (XML/form) fully, with the same checks, capped at `limit` bytes. */
export async function receiveSmallBody(req: IncomingMessage, onRawBytes: (n: number) => void, limit = 32 * 1024 * 1024): Promise<string> {
  let seen = 0;
  const got = await receiveBody(req, new MemorySink(), (n) => {
    seen += n;
    if (seen > limit) req.destroy(new Error('body too large'));
    onRawBytes(n);
  });
  return (got.blob.mem ?? Buffer.alloc(0)).toString('utf8');
}
