/** Float comparison for money: equal within 1e-12 absolute or relative. */
import assert from 'node:assert/strict';

export function approx(actual: number, expected: number, message?: string): void {
  const tol = 1e-12 * Math.max(1, Math.abs(expected));
  assert.ok(Math.abs(actual - expected) <= tol, `${message ?? 'value'}: expected ${expected}, got ${actual}`);
}

/** One archived object's 40 KB overhead per month at us-east-1 prices:
 *  8192 B / 1e9 × $0.023 = $0.000000188416, plus 32768 B / 1e9 × $0.00099 = $0.00000003244032,
 *  total $0.00000022085632. */
export const DA_OVERHEAD_MONTH = 0.00000022085632;
