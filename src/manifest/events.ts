/**
 * The manifest's event log (`events`): what happened, when, to which
 * dataset, with a JSON detail. Append-only.
 */
import type { ManifestDb } from './context.js';
import { d, jsonText } from './rows.js';
import type { EventRow } from './types.js';

interface EventDbRow {
  id: number;
  at: string;
  kind: string;
  dataset: string | null;
  detail: string;
}

function toEvent(r: EventDbRow): EventRow {
  return { id: r.id, at: d(r.at), kind: r.kind, dataset: r.dataset, detail: JSON.parse(r.detail) as unknown };
}

export class Events {
  constructor(private readonly c: ManifestDb) {}

  /** Append an event. Must run inside a transaction (the one of the change it records). */
  insertEvent(kind: string, dataset: string | null, detail: unknown): void {
    this.c.db.prepare('INSERT INTO events (at, kind, dataset, detail) VALUES (?, ?, ?, ?)').run(this.c.iso(), kind, dataset, jsonText(detail));
  }

  /** Append to the event log. `detail` is JSON; never put secrets in it. */
  logEvent(kind: string, dataset: string | null, detail: unknown): void {
    this.c.db.transaction(() => this.insertEvent(kind, dataset, detail)).immediate();
  }

  /** The newest `limit` events, newest first. */
  events(limit = 100): EventRow[] {
    const rows = this.c.db.prepare('SELECT id, at, kind, dataset, detail FROM events ORDER BY id DESC LIMIT ?').all(limit) as EventDbRow[];
    return rows.map(toEvent);
  }

  /** The newest `limit` events of `kind`, newest first (e.g. the last `verified`, however many other events came since). */
  eventsOfKind(kind: string, limit = 100): EventRow[] {
    const rows = this.c.db.prepare('SELECT id, at, kind, dataset, detail FROM events WHERE kind = ? ORDER BY id DESC LIMIT ?').all(kind, limit) as EventDbRow[];
    return rows.map(toEvent);
  }
}
