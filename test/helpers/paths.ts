/** Paths tests need, independent of where the compiled test file lives. */
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Repository root (tests run from dist/test/..., three levels below it). */
export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

/** Captured command outputs and other checked-in test data. */
export const fixturesDir = resolve(repoRoot, 'test', 'fixtures');

/** The CLI entry point, for tests that run zbk as a separate process. */
export const zbkBin = resolve(repoRoot, 'bin', 'run.js');
