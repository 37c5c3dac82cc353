/**
 * One row of `zbk doctor`'s report and how rows are made: shared by the
 * doctor (./doctor.ts) and its store checks (./doctor-store.ts), so neither
 * imports the other back.
 */
export type CheckStatus = 'ok' | 'warn' | 'fail' | 'skip';

/** One row of the doctor's report. `detail` and `fix` never hold secrets. */
export interface DoctorCheck {
  name: string;
  status: CheckStatus;
  detail: string;
  /** One-line fix for warn/fail. */
  fix?: string;
  /** What `--fix` changed, when it did. */
  fixed?: string;
}

export interface DoctorOptions {
  fix?: boolean;
}

/** Message of any thrown value, first line only (store errors carry no secrets). */
export function messageOf(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0] ?? 'error';
}

export function row(name: string, status: CheckStatus, detail: string, fix?: string): DoctorCheck {
  return fix && status !== 'ok' && status !== 'skip' ? { name, status, detail, fix } : { name, status, detail };
}
