/** Public surface of zbk's crypto layer. Byte formats: docs/FORMAT.md. */
export type { Keyring, PartContext, VolumeMetadata } from './types.js';
export { loadSodium, type SodiumBackend } from './sodium.js';
export {
  keyringFromMasterKey,
  sealedPartSize,
  sealedBlobSize,
  PART_CHUNK_SIZE,
  PART_HEADER_BYTES,
  MASTER_KEY_BYTES,
  SUBKEYS,
  ZbkKeyring,
  type KeyringOptions,
} from './keyring.js';
export { ContainerOpener } from './chunked.js';
export { METADATA_MAX_CHARS } from './metadata.js';
export {
  createKeyFile,
  openKeyFile,
  changePassphrase,
  changePassphraseSlot,
  addPassphraseSlot,
  removeSlot,
  listSlots,
  keyFileKeyId,
  exportPaperKey,
  importPaperKey,
  paperKeyId,
  slotIds,
  isTestOnlyKdf,
  weakKdfWarning,
  MAX_SLOTS,
  type KdfParams,
  type SlotOptions,
} from './keyfile.js';
