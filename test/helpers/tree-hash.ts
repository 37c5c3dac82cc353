/** Content fingerprint of a directory tree, for "every file identical" assertions (same code the restore drill uses). */
export { hashTree } from '../../src/services/tree-compare.js';
