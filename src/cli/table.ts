/** Plain text tables for human output (no colours: logs and pipes stay clean). */
import Table from 'cli-table3';

export function textTable(head: string[]): Table.Table {
  return new Table({ head, style: { head: [], border: [] } });
}
