/**
 * Decoder for `Content-Encoding: aws-chunked` request bodies, which the JS
 * SDK v3 sends for streaming uploads with a trailing checksum:
 *
 *     <hex-size>[;chunk-signature=<sig>]\r\n<data>\r\n ... 0[;...]\r\n
 *     [<trailer-name>:<value>\r\n]*\r\n
 *
 * Chunk signatures are not verified (the server does not verify SigV4 at
 * all); trailers are collected for the caller to check.
 */
import { Transform, type TransformCallback } from 'node:stream';

type State = 'size' | 'data' | 'data-crlf' | 'trailer' | 'done';

/** Longest chunk-size or trailer line we accept before calling the body malformed. */
const MAX_LINE = 8192;

export class AwsChunkedDecoder extends Transform {
  /** Trailer headers (lower-case names), complete once the stream ended. */
  readonly trailers = new Map<string, string>();
  private state: State = 'size';
  private line = '';
  private remaining = 0;

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    try {
      this.consume(chunk);
      cb();
    } catch (e) {
      cb(e as Error);
    }
  }

  override _flush(cb: TransformCallback): void {
    cb(this.state === 'done' ? null : new Error('aws-chunked body ended early'));
  }

  private consume(buf: Buffer): void {
    let i = 0;
    while (i < buf.length) {
      switch (this.state) {
        case 'data': {
          const n = Math.min(this.remaining, buf.length - i);
          this.push(buf.subarray(i, i + n));
          i += n;
          this.remaining -= n;
          if (this.remaining === 0) this.state = 'data-crlf';
          break;
        }
        case 'done':
          // Anything after the final empty line is ignored, as S3 does.
          return;
        default: {
          const nl = buf.indexOf(0x0a, i);
          const end = nl === -1 ? buf.length : nl + 1;
          this.line += buf.toString('latin1', i, end);
          i = end;
          if (this.line.length > MAX_LINE) throw new Error('aws-chunked line too long');
          if (nl !== -1) {
            const line = this.line.replace(/\r?\n$/, '');
            this.line = '';
            this.onLine(line);
          }
        }
      }
    }
  }

  private onLine(line: string): void {
    switch (this.state) {
      case 'size': {
        const hex = line.split(';')[0].trim();
        if (!/^[0-9a-fA-F]+$/.test(hex)) throw new Error(`bad aws-chunked size line ${JSON.stringify(line.slice(0, 40))}`);
        this.remaining = parseInt(hex, 16);
        this.state = this.remaining === 0 ? 'trailer' : 'data';
        return;
      }
      case 'data-crlf':
        if (line !== '') throw new Error('aws-chunked chunk not followed by CRLF');
        this.state = 'size';
        return;
      case 'trailer': {
        if (line === '') {
          this.state = 'done';
          return;
        }
        const colon = line.indexOf(':');
        if (colon <= 0) throw new Error('bad aws-chunked trailer line');
        this.trailers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
        return;
      }
      default:
        return;
    }
  }
}
