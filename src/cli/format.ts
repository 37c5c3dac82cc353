/**
 * Byte sizes for people: decimal SI units (1 GB = 10⁹ bytes), the unit AWS
 * prices and the free egress allowance are quoted in and the one
 * src/cost uses (BYTES_PER_GB), so a volume's size and a month's allowance
 * in the same table read alike. Config sizes ("32MiB") are parsed in
 * src/config, binary or decimal as written.
 */
import prettyBytes from 'pretty-bytes';

export function formatBytes(n: number): string {
  return prettyBytes(n, { maximumFractionDigits: 2 });
}

/**
 * Two sizes compared in one sentence ("25 MB exceeds the allowance of
 * 20 MB"): more decimals when two differ but read alike, exact bytes when
 * even that is not enough. Never "0.0 GB exceeds 0.02 GB".
 */
export function formatBytesPair(a: number, b: number): [string, string] {
  for (let digits = 2; digits <= 4; digits++) {
    const fa = prettyBytes(a, { maximumFractionDigits: digits });
    const fb = prettyBytes(b, { maximumFractionDigits: digits });
    if (fa !== fb || a === b) return [fa, fb];
  }
  return [`${a.toLocaleString('en-US')} bytes`, `${b.toLocaleString('en-US')} bytes`];
}

/**
 * Dollars for people: cents from a cent up ($1.23); a smaller non-zero
 * amount with two significant digits ($0.0004, $0.000042), so a tiny cost
 * never reads as $0.00. `extraDigits` adds decimals (see formatUSDPair).
 */
export function formatUSD(usd: number, extraDigits = 0): string {
  const sign = usd < 0 ? '-' : '';
  const abs = Math.abs(usd);
  if (abs === 0) return '$0.00';
  const significant = abs >= 0.01 ? 2 : 1 - Math.floor(Math.log10(abs));
  const decimals = Math.min(12, significant + extraDigits);
  let text = abs.toFixed(decimals);
  // Beyond cents, trailing zeros say nothing: $0.00040 → $0.0004.
  if (decimals > 2) text = text.replace(/0+$/, '').replace(/\.(\d?)$/, (_, d: string) => `.${d.padEnd(2, '0')}`);
  if (Number(text) === 0) return 'less than $0.000000000001';
  return `${sign}$${text}`;
}

/** Two amounts compared in one sentence ("budget $0.0003 is below $0.00042"): decimals added until different amounts read differently. */
export function formatUSDPair(a: number, b: number): [string, string] {
  let pair: [string, string] = [formatUSD(a), formatUSD(b)];
  for (let extra = 1; extra <= 6 && pair[0] === pair[1] && a !== b; extra++) pair = [formatUSD(a, extra), formatUSD(b, extra)];
  return pair;
}
