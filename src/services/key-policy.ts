/**
 * What zbk accepts when it writes a key slot (`init`, `key passwd`,
 * `key import`; never when a key file is opened):
 *
 * - `--kdf min` (1 Argon2id pass over 8 KiB) only in tests: refused with
 *   WEAK_KDF (exit 2) unless ZBK_TEST_ALLOW_WEAK_KDF=1. Anyone with a copy of
 *   the bucket could try passphrases against such a slot by the million.
 * - The new passphrase is scored by zxcvbn-ts (@zxcvbn-ts/core with the
 *   common and English dictionaries: common passwords, names, words, keyboard
 *   patterns, dates, l33t), not by its length; a score below 3 of 4 is
 *   WEAK_PASSPHRASE (exit 2) unless `--allow-weak-passphrase`. The error
 *   names the estimator's warning, never the passphrase. The test variable
 *   does not lift this check: the test helpers use strong passphrases.
 *
 * The estimator and its dictionaries (~2 MB) are loaded only here, on the
 * first new passphrase of a process.
 */
import { isTestOnlyKdf, type KdfParams } from '../crypto/index.js';
import { UsageError } from '../errors.js';

/** Set to `1` (tests only) to allow `--kdf min`. */
export const WEAK_KDF_ENV = 'ZBK_TEST_ALLOW_WEAK_KDF';

/** Lowest zxcvbn score (0–4) a new passphrase may have: 3 is "safely unguessable: moderate protection from offline slow-hash scenario". */
export const MIN_PASSPHRASE_SCORE = 3;

/** Refuse a test-only Argon2id cost outside tests (before any passphrase is read). */
export function assertKdfAllowed(kdf: KdfParams | undefined): void {
  if (!isTestOnlyKdf(kdf) || process.env[WEAK_KDF_ENV] === '1') return;
  throw new UsageError(
    `--kdf min is for tests only (1 Argon2id pass over 8 KiB: a copy of the bucket could be searched for the passphrase cheaply); use the default (moderate) or interactive (${WEAK_KDF_ENV}=1 allows it in test environments)`,
    'WEAK_KDF',
  );
}

interface Estimator {
  check(password: string, userInputs?: (string | number)[]): { score: number; feedback: { warning: string | null; suggestions: string[] } };
  /** Every warning and suggestion text the estimator can give (fixed English phrases). */
  texts: Set<string>;
}

let estimator: Promise<Estimator> | null = null;

function loadEstimator(): Promise<Estimator> {
  estimator ??= (async () => {
    const [{ ZxcvbnFactory }, common, en] = await Promise.all([import('@zxcvbn-ts/core'), import('@zxcvbn-ts/language-common'), import('@zxcvbn-ts/language-en')]);
    const z = new ZxcvbnFactory({
      dictionary: { ...common.dictionary, ...en.dictionary },
      graphs: common.adjacencyGraphs,
      translations: en.translations,
    });
    const texts = new Set([...Object.values(en.translations.warnings), ...Object.values(en.translations.suggestions)]);
    return { check: (p, u) => z.check(p, u), texts };
  })();
  return estimator;
}

export interface StrengthOptions {
  /** `--allow-weak-passphrase`: a weak passphrase is a warning, not an error. */
  allowWeak?: boolean;
  /** Words a guesser would try first (the store URL's parts, dataset names). */
  context?: string[];
}

/**
 * Check a new passphrase. Returns a warning when it is weak and `allowWeak`
 * is set, else null; throws UsageError('WEAK_PASSPHRASE') when weak. Neither
 * ever contains the passphrase.
 */
export async function checkNewPassphrase(passphrase: string, opts: StrengthOptions = {}): Promise<string | null> {
  const words = ['zbk', 'backup', ...(opts.context ?? []).flatMap((c) => c.split(/[^\p{L}\p{N}]+/u))].filter((w) => w.length >= 3);
  const est = await loadEstimator();
  const r = est.check(passphrase, words);
  if (r.score >= MIN_PASSPHRASE_SCORE) return null;
  // Only one of the estimator's fixed phrases is ever shown: nothing of the passphrase can get out.
  const said = [r.feedback.warning, ...r.feedback.suggestions].find((t): t is string => typeof t === 'string' && est.texts.has(t));
  const why = said ?? 'it is too easy to guess';
  const what = `the new passphrase is weak (zxcvbn score ${r.score} of 4, at least ${MIN_PASSPHRASE_SCORE} needed: ${why.replace(/\.$/, '')})`;
  if (opts.allowWeak) return `${what}; accepted because of --allow-weak-passphrase`;
  throw new UsageError(`${what}: choose a longer one (several unrelated words), or pass --allow-weak-passphrase`, 'WEAK_PASSPHRASE');
}
