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
