/**
 * How patient zbk is with a store it cannot reach.
 *
 * - `patient` (unattended runs: timers, cron, CI, pipes): every transient
 *   failure, an unreachable endpoint included, gets the configured budget
 *   (`[retry]`, default 8 retries, 0.5 s doubling to 30 s: about 1.5–3
 *   minutes). A network that comes up late, or a store that is down for a
 *   minute, does not fail a nightly backup.
 * - `quick` (a person at a terminal): as long as the store has never
 *   answered, a failure to connect (refused, no such host, DNS failure, no
 *   route, connect timeout) gets 2 quick retries and a 5 s connect timeout,
 *   so a wrong endpoint or host is reported within seconds. Once the store
 *   has answered anything, every failure gets the configured budget, as in
 *   patient mode (a long interactive push survives a network blip).
 *
 * The mode is `ZBK_RETRY` (`patient` or `quick`) when set; otherwise quick
 * exactly when stdin and stderr are terminals and neither `CI` nor systemd
 * (`INVOCATION_ID`, `JOURNAL_STREAM`) says the run is unattended.
 */
import type { RetryConfig } from '../config/config.js';
import { ConfigError } from '../errors.js';

export type RetryMode = 'patient' | 'quick';

export interface RetryPolicy {
  mode: RetryMode;
  /** Every transient failure (patient), or every one once the store has answered (quick). */
  retry: RetryConfig;
  /** Quick only: the budget for a store that cannot be reached and has never answered. */
  firstContact?: RetryConfig;
  /** Time allowed to establish each connection, ms. */
  connectTimeoutMs: number;
}

/** Quick mode's budget before the store first answers: 3 attempts, about 1–2 s of waiting. */
export const QUICK_FIRST_CONTACT: RetryConfig = { retries: 2, minTimeoutMs: 250, maxTimeoutMs: 1000 };
export const QUICK_CONNECT_TIMEOUT_MS = 5_000;
export const PATIENT_CONNECT_TIMEOUT_MS = 30_000;

export function retryPolicy(mode: RetryMode, retry: RetryConfig): RetryPolicy {
  if (mode === 'patient') return { mode, retry, connectTimeoutMs: PATIENT_CONNECT_TIMEOUT_MS };
  return { mode, retry, firstContact: QUICK_FIRST_CONTACT, connectTimeoutMs: QUICK_CONNECT_TIMEOUT_MS };
}

/**
 * The mode for this process (see the module comment).
 * @throws ConfigError when ZBK_RETRY is set to anything but patient or quick.
 */
export function retryModeFromEnv(
  env: NodeJS.ProcessEnv = process.env,
  tty: { stdin: boolean; stderr: boolean } = { stdin: process.stdin.isTTY === true, stderr: process.stderr.isTTY === true },
): RetryMode {
  const set = env.ZBK_RETRY?.trim().toLowerCase();
  if (set === 'patient' || set === 'quick') return set;
  if (set) throw new ConfigError(`ZBK_RETRY must be "patient" or "quick", not ${JSON.stringify(env.ZBK_RETRY)}`, 'INVALID_ZBK_RETRY');
  const ci = env.CI !== undefined && env.CI !== '' && env.CI !== 'false' && env.CI !== '0';
  const unattended = ci || Boolean(env.INVOCATION_ID) || Boolean(env.JOURNAL_STREAM);
  return tty.stdin && tty.stderr && !unattended ? 'quick' : 'patient';
}

/**
 * The longest a budget can wait between attempts before giving up (p-retry's
 * exponential backoff, factor 2, with jitter of up to 2× per delay, each delay
 * capped at maxTimeoutMs). Connection time per attempt comes on top.
 */
export function maxBackoffMs(cfg: RetryConfig): number {
  let total = 0;
  for (let i = 0; i < cfg.retries; i++) total += Math.min(2 * cfg.minTimeoutMs * 2 ** i, Math.max(cfg.minTimeoutMs, cfg.maxTimeoutMs));
  return total;
}

/** The least a budget waits before giving up (no jitter). */
export function minBackoffMs(cfg: RetryConfig): number {
  let total = 0;
  for (let i = 0; i < cfg.retries; i++) total += Math.min(cfg.minTimeoutMs * 2 ** i, Math.max(cfg.minTimeoutMs, cfg.maxTimeoutMs));
  return total;
}
