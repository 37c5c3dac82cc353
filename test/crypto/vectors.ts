/**
 * Computes the test vectors published in docs/FORMAT.md. The vectors test
 * recomputes them with both backends and compares with the text of the
 * document, so the document and the code cannot drift apart.
 */
import { toHex, utf8 } from '../../src/crypto/bytes.js';
import { keyIdOf, SUBKEYS } from '../../src/crypto/keyring.js';
import { encodePaperKey } from '../../src/crypto/paper.js';
import type { SodiumBackend } from '../../src/crypto/sodium.js';
import type { VolumeMetadata } from '../../src/crypto/types.js';
import { ctx, vectorKeyring, vectorMasterKey } from './helpers.js';

/** The VolumeMetadata sealed in the vector. */
export const VECTOR_METADATA: VolumeMetadata = {
  dataset: 'tank/photos',
  streamId: 'f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff',
  fromSnapshot: { name: 'autosnap_2024-01-01', guid: '1234567890123456789' },
  toSnapshot: { name: 'autosnap_2024-02-01', guid: '18446744073709551615', createtxg: '4242', creation: 1706745600 },
  volumeIndex: 2,
  volumeSize: 53687091200,
  partSize: 67108864,
  startedAt: '2024-02-01T03:00:00.000Z',
};

export const VECTOR_PART_PLAINTEXT = 'zbk test vector\n';

/** name → value (hex, or base64url for metadata), in document order. */
export function computeVectors(sodium: SodiumBackend): [string, string][] {
  const mk = vectorMasterKey();
  const kr = vectorKeyring(sodium);
  const sub = (s: { context: string; id: number }): string => {
    const out = new Uint8Array(32);
    sodium.kdfDerive(out, s.id, s.context, mk);
    return toHex(out);
  };
  return [
    ['master_key', toHex(mk)],
    ['key_id', toHex(keyIdOf(sodium, mk))],
    ['subkey_data', sub(SUBKEYS.data)],
    ['subkey_metadata', sub(SUBKEYS.metadata)],
    ['subkey_names', sub(SUBKEYS.names)],
    ['part_empty', toHex(kr.sealPart(ctx(3, { final: true }), new Uint8Array(0)))],
    ['part_small', toHex(kr.sealPart(ctx(3, { final: true }), utf8(VECTOR_PART_PLAINTEXT)))],
    ['blob_stream_record', toHex(kr.sealBlob('zbk-stream-v1', utf8('{"v":1}')))],
    ['volume_metadata', kr.sealVolumeMetadata(VECTOR_METADATA)],
    ['opaque_name', kr.opaqueName('dataset', 'tank/photos')],
  ];
}

/** The paper key of the vector master key, as printed. */
export function vectorPaperKey(sodium: SodiumBackend): string {
  return encodePaperKey(sodium, vectorMasterKey(), toHex(keyIdOf(sodium, vectorMasterKey())));
}
