/** Consolidation: re-base long chains on a new full stream when that is cheaper, and delete what is no longer needed (./run.ts). */
export * from './run.js';
