/**
 * Names of the local store's layout 2 on disk (docs/FORMAT.md section 2; the
 * tree is described in local-store.ts). Layout 1's names, read only by the
 * conversion, are in convert-v1.ts.
 */

/** Suffix of an object's sidecar: `<key>.zbk-meta.json` (see sidecar.ts). */
export const META_SUFFIX = '.zbk-meta.json';
/** Prefix of every name of the store's own (temp files, uploads, marker, locks); reserved in keys. */
export const RESERVED = '.zbk-';
/** Directory of the multipart uploads in flight, one subdirectory per upload id. */
export const UPLOADS = '.zbk-uploads';
/** The layout marker, holding LAYOUT. */
export const LAYOUT_FILE = '.zbk-layout';
export const LAYOUT = '2\n';
export const UPLOAD_ID = /^[0-9a-f]{32}$/;
/** A part file of an upload: `<nnnnn>.<etag>.<sha256hex>` (its name is its identity). */
export const PART_FILE = /^(\d{5})\.([0-9a-f]{32})\.([0-9a-f]{64})$/;
/**
 * A part placed in the upload's PLACED_DATA file at (n − 1) × the upload's
 * part size: an empty file `<nnnnn>.<etag>.<sha256hex>.<size>.placed`, made
 * only once those bytes are synced (its name is its identity).
 */
export const PLACED_PART = /^(\d{5})\.([0-9a-f]{32})\.([0-9a-f]{64})\.(\d+)\.placed$/;
/** The file an upload's placed parts are written into; completing renames it to the key. */
export const PLACED_DATA = 'placed.data';
