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
