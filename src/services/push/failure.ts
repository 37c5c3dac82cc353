/**
 * What happens when a push fails, wherever it fails: before the upload
 * (passphrase, store, lock, a config error found after the config was
 * read) or during one dataset's push. The failure is recorded in the
 * state dir (../push-status.ts) so `zbk check` is CRITICAL until a later
 * push of the dataset succeeds, and the failure hooks run: `post_push` with
 * ZBK_RESULT=failure for each dataset, and the `on_failure` webhook.
 *
 * Errors of the command line itself (a mistyped `--snapshot`, an invalid
 * dataset name, conflicting flags) are not backup failures: they are
 * reported (exit 2) and neither recorded nor alerted. A dataset without a
 * snapshot to push (NO_SNAPSHOTS: none at all, or none matching its
 * snapshot_pattern) is a backup failure even though it also exits 2: the
 * unattended push it stops is not a typo.
 *
 * Messages sent out are redacted (hooks.ts, `redactSecrets`).
 */
import type { ZbkConfig } from '../../config/config.js';
import { ExitCode, UsageError, ZbkError } from '../../errors.js';
import type { Logger } from '../context.js';
import { redactSecrets, runHookCommand, sendWebhook } from '../hooks.js';
import { recordPushOutcome } from '../push-status.js';

/** True for an error of the invocation (exit 2), not of the backup: never recorded, never alerted. */
export function isInvocationError(err: unknown): boolean {
  return err instanceof UsageError && err.code !== 'NO_SNAPSHOTS';
}

/** Errors already recorded and alerted (one failure, one alert, however many layers it passes). */
const reported = new WeakSet<object>();

export function wasReported(err: unknown): boolean {
  return typeof err === 'object' && err !== null && reported.has(err);
}

export function markReported(err: unknown): void {
  if (typeof err === 'object' && err !== null) reported.add(err);
}

export interface FailureFacts {
  code: string;
  exitCode: number;
  /** First line, redacted. */
  message: string;
}

/** Code, exit code and a redacted one-line message of any thrown value. */
export function failureFacts(err: unknown, config: Pick<ZbkConfig, 'hooks'>): FailureFacts {
  const raw = err instanceof Error ? err.message || String(err) : String(err);
  const message = redactSecrets(raw.split('\n')[0]!, config.hooks).slice(0, 300);
  if (err instanceof ZbkError) return { code: err.code, exitCode: err.exitCode, message };
  return { code: 'INTERNAL', exitCode: ExitCode.FAILURE, message };
}

/** Record the success of a push of `datasets` (also "nothing to push"). Never throws: a failure to record is a warning. */
export function recordPushSuccess(config: ZbkConfig, datasets: readonly string[], at: Date, warn: (m: string) => void): void {
  try {
    recordPushOutcome(config.stateDir, datasets, { ok: true, at });
  } catch (err) {
    warn(`could not record the push result in ${config.stateDir} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
}

/** Record a failure of `datasets` in the state dir. Never throws. */
export function recordPushFailure(config: ZbkConfig, datasets: readonly string[], facts: FailureFacts, at: Date, warn: (m: string) => void): void {
  try {
    recordPushOutcome(config.stateDir, datasets, { ok: false, at, ...facts });
  } catch (err) {
    warn(`could not record the failed push in ${config.stateDir} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); zbk check will not see it`);
  }
}

/** The environment of `post_push` after a failure. */
export function failureHookEnv(dataset: string, facts: FailureFacts): Record<string, string> {
  return { ZBK_DATASET: dataset, ZBK_RESULT: 'failure', ZBK_ERROR: facts.code, ZBK_MESSAGE: facts.message };
}

/**
 * A push of `datasets` failed before any dataset's own push began (so no
 * pre_push ran): record it for each, run `post_push` with
 * ZBK_RESULT=failure for each, send the failure webhook once. Does nothing
 * for an invocation error or one already reported. Never throws.
 */
export async function reportEarlyPushFailure(config: ZbkConfig, datasets: readonly string[], err: unknown, log: Logger, at: Date): Promise<void> {
  if (isInvocationError(err) || wasReported(err)) return;
  markReported(err);
  const facts = failureFacts(err, config);
  const warn = (m: string): void => log.warn(m);
  recordPushFailure(config, datasets, facts, at, warn);
  const hooks = config.hooks;
  if (hooks.postPush) {
    for (const ds of datasets) {
      const o = await runHookCommand(hooks.postPush, failureHookEnv(ds, facts), hooks.timeoutSeconds);
      if (!o.ok) warn(`post-push ${o.what} failed (${o.detail ?? ''})`);
    }
  }
  const w = await sendWebhook(hooks, false, `zbk push ${datasets.join(' ')} failed: ${facts.message}`, [...config.datasets.map((d) => d.name), ...datasets]);
  if (w && !w.ok) warn(`${w.what} failed (${w.detail ?? ''})`);
}
