/**
 * Checksum algorithms S3 accepts in `x-amz-checksum-*` headers/trailers.
 * CRC32 and CRC32C are table-driven implementations (reflected polynomials
 * 0xEDB88320 and 0x82F63B78); SHA-1/SHA-256/MD5 come from node:crypto.
 */
import { createHash, type Hash } from 'node:crypto';

function makeTable(poly: number): Uint32Array {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ poly : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
}

const CRC32_TABLE = makeTable(0xedb88320);
const CRC32C_TABLE = makeTable(0x82f63b78);

/** Incremental reflected CRC-32 with a given table. */
class Crc {
  private crc = 0xffffffff;
  constructor(private readonly table: Uint32Array) {}
  update(data: Uint8Array): void {
    let c = this.crc;
    const t = this.table;
    for (let i = 0; i < data.length; i++) c = t[(c ^ data[i]) & 0xff] ^ (c >>> 8);
    this.crc = c;
  }
  /** Big-endian 4 bytes, which is what S3 base64-encodes. */
  digest(): Buffer {
    const out = Buffer.alloc(4);
    out.writeUInt32BE((this.crc ^ 0xffffffff) >>> 0);
    return out;
  }
}

/** Checksum algorithm names as S3 spells them (upper case). */
export type ChecksumAlgorithm = 'CRC32' | 'CRC32C' | 'SHA1' | 'SHA256' | 'CRC64NVME';

/** Algorithms the server can verify. CRC64NVME is echoed but not verified (documented limitation). */
export const VERIFIABLE: readonly ChecksumAlgorithm[] = ['CRC32', 'CRC32C', 'SHA1', 'SHA256'];
export const ALL_ALGORITHMS: readonly ChecksumAlgorithm[] = ['CRC32', 'CRC32C', 'SHA1', 'SHA256', 'CRC64NVME'];

/** `x-amz-checksum-crc32` etc. */
export function headerName(alg: ChecksumAlgorithm): string {
  return `x-amz-checksum-${alg.toLowerCase()}`;
}

/** Reverse of `headerName`; undefined for anything else. */
export function algorithmOfHeader(name: string): ChecksumAlgorithm | undefined {
  const lower = name.toLowerCase();
  return ALL_ALGORITHMS.find((a) => headerName(a) === lower);
}

interface Digester {
  update(data: Uint8Array): void;
  digest(): Buffer;
}

function digester(alg: ChecksumAlgorithm | 'MD5'): Digester {
  switch (alg) {
    case 'CRC32':
      return new Crc(CRC32_TABLE);
    case 'CRC32C':
      return new Crc(CRC32C_TABLE);
    case 'SHA1':
    case 'SHA256':
    case 'MD5': {
      const h: Hash = createHash(alg === 'SHA1' ? 'sha1' : alg === 'SHA256' ? 'sha256' : 'md5');
      return { update: (d) => void h.update(d), digest: () => h.digest() };
    }
    default:
      throw new Error(`cannot compute ${alg}`);
  }
}

/**
 * Feeds each chunk of a body to MD5 (always: the ETag) and to the requested
 * verifiable algorithms, and keeps the total length.
 */
export class MultiHasher {
  private readonly md5 = digester('MD5');
  private readonly others = new Map<ChecksumAlgorithm, Digester>();
  length = 0;

  constructor(algorithms: Iterable<ChecksumAlgorithm>) {
    for (const a of algorithms) if (VERIFIABLE.includes(a)) this.others.set(a, digester(a));
  }

  update(chunk: Uint8Array): void {
    this.length += chunk.length;
    this.md5.update(chunk);
    for (const d of this.others.values()) d.update(chunk);
  }

  /** Raw MD5 and base64 digests of the requested algorithms. */
  finish(): { md5: Buffer; checksums: Map<ChecksumAlgorithm, string> } {
    const checksums = new Map<ChecksumAlgorithm, string>();
    for (const [a, d] of this.others) checksums.set(a, d.digest().toString('base64'));
    return { md5: this.md5.digest(), checksums };
  }
}

/** One-shot checksum of a buffer (base64), for small bodies and tests. */
export function checksumOf(alg: ChecksumAlgorithm | 'MD5', data: Uint8Array): string {
  const d = digester(alg);
  d.update(data);
  return d.digest().toString('base64');
}

/** Raw digest bytes of a base64 checksum value (composite checksums hash these). */
export function rawDigest(base64: string): Buffer {
  return Buffer.from(base64, 'base64');
}
