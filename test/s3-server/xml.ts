/**
 * Minimal XML helpers: building S3 responses and parsing the few XML request
 * bodies S3 accepts (Delete, CompleteMultipartUpload, RestoreRequest,
 * LifecycleConfiguration).
 */
import { XMLParser } from 'fast-xml-parser';

const S3_NS = 'http://s3.amazonaws.com/doc/2006-03-01/';

/** Escape text for element content and attribute values. */
export function esc(s: string): string {
  return s.replace(/[&<>"'\r]/g, (c) => {
    switch (c) {
      case '&':
        return '&amp;';
      case '<':
        return '&lt;';
      case '>':
        return '&gt;';
      case '"':
        return '&quot;';
      case "'":
        return '&apos;';
      default:
        return '&#13;';
    }
  });
}

/** A tree node for `render`: an element name with text, children, or nothing. */
export type XmlValue = string | number | boolean | XmlNode[] | undefined;
export type XmlNode = [name: string, value: XmlValue];

function renderNodes(nodes: XmlNode[]): string {
  let out = '';
  for (const [name, value] of nodes) {
    if (value === undefined) continue;
    const inner = Array.isArray(value) ? renderNodes(value) : esc(String(value));
    out += `<${name}>${inner}</${name}>`;
  }
  return out;
}

/** Render a document with one root element in the S3 namespace. */
export function xmlDoc(root: string, children: XmlNode[], ns: string = S3_NS): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<${root} xmlns="${ns}">${renderNodes(children)}</${root}>`;
}

/** Error document as AWS sends it (no namespace). */
export function errorDoc(code: string, message: string, extra: XmlNode[]): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<Error>${renderNodes([['Code', code], ['Message', message], ...extra])}</Error>`;
}

/** ISO-8601 with milliseconds, as S3 listings use. */
export function isoDate(ms: number): string {
  return new Date(ms).toISOString();
}

// Tag values stay strings: keys like "0012" must not become numbers, and
// whitespace in keys is significant.
// Character references are decoded: Go's encoding/xml (rclone, the AWS SDK
// for Go) writes the quotes of an ETag as &#34;, which S3 reads as '"'.
const parser = new XMLParser({
  htmlEntities: true,
  ignoreAttributes: true,
  parseTagValue: false,
  trimValues: false,
  removeNSPrefix: true,
  isArray: (name) => name === 'Object' || name === 'Part' || name === 'Rule',
});

/** A parsed element: nested records, arrays and strings. */
export type Parsed = { [k: string]: Parsed | Parsed[] | string | string[] | undefined };

/**
 * Parse an XML body; throws on malformed input so the caller can answer
 * MalformedXML.
 */
export function parseXml(body: string): Parsed {
  const doc: unknown = parser.parse(body, true);
  if (typeof doc !== 'object' || doc === null) throw new Error('not an XML document');
  return doc as Parsed;
}

/** Child element as a record (or undefined). */
export function child(p: Parsed | undefined, name: string): Parsed | undefined {
  const v = p?.[name];
  if (v === undefined || typeof v === 'string' || Array.isArray(v)) return typeof v === 'string' && v.trim() === '' ? {} : undefined;
  return v;
}

/** Repeated child elements as records. */
export function children(p: Parsed | undefined, name: string): Parsed[] {
  const v = p?.[name];
  if (v === undefined) return [];
  const arr = Array.isArray(v) ? v : [v];
  return arr.map((x) => (typeof x === 'string' ? { '#text': x } : x));
}

/** Text content of a child element (or undefined). */
export function text(p: Parsed | undefined, name: string): string | undefined {
  const v = p?.[name];
  if (typeof v === 'string') return v;
  return undefined;
}
