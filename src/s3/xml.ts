/** XML in and out: a tiny escaping builder for responses, fast-xml-parser for request bodies. */
import { XMLParser } from "fast-xml-parser";
import { LOOP_TURN_BUDGET_MS, rememberLast, runInTurns, setInBoundedCache } from "../base/index.js";

export const S3_XMLNS = "http://s3.amazonaws.com/doc/2006-03-01/";

const XML_SPECIAL = /[&<>"'\r]/;

export function escapeXml(value: string): string {
  // Most values (keys, ETags, dates) need no escaping; testing first spares a replace per value.
  if (!XML_SPECIAL.test(value)) return value;
  return value.replace(/[&<>"'\r]/g, (c) => {
    switch (c) {
      case "&":
        return "&amp;";
      case "<":
        return "&lt;";
      case ">":
        return "&gt;";
      case '"':
        return "&quot;";
      case "'":
        return "&apos;";
      default:
        return "&#13;";
    }
  });
}

/**
 * A value tree: a string/number/boolean is a text element; an array repeats the element.
 * The key ORDERED holds elements whose names interleave ([name, value] pairs in order), for
 * ListObjectVersions where Version and DeleteMarker elements alternate.
 */
export type XmlValue = string | number | boolean | undefined | XmlNode | XmlValue[] | Array<[string, XmlValue]> | MappedList;
export interface XmlNode {
  [name: string]: XmlValue;
}
export const ORDERED = "#ordered";

/**
 * A repeated element whose nodes are made from `items` one at a time as they are rendered, so
 * a listing's thousand nodes never live at once: each is garbage before the next is made, and
 * the young-generation GC, which copies what is alive, does not copy them (bench/PERFORMANCE.md).
 */
export class MappedList {
  private constructor(
    readonly length: number,
    readonly nodeAt: (index: number) => XmlValue,
  ) {}

  static of<Item>(items: readonly Item[], node: (item: Item) => XmlValue): MappedList {
    return new MappedList(items.length, (index) => node(items[index]!));
  }
}

/**
 * Appends `value` rendered as element(s) `name`. Strings are concatenated rather than pushed
 * and joined: V8 builds a rope and flattens it once, and a 1,000-key listing renders ~8,000
 * elements.
 */
function renderValue(name: string, value: XmlValue, out: string): string {
  if (value === undefined) return out;
  if (name === ORDERED) {
    for (const [childName, childValue] of value as Array<[string, XmlValue]>) out = renderValue(childName, childValue, out);
    return out;
  }
  if (Array.isArray(value)) {
    for (const item of value) out = renderValue(name, item as XmlValue, out);
    return out;
  }
  if (value instanceof MappedList) {
    for (let index = 0; index < value.length; index++) out = renderValue(name, value.nodeAt(index), out);
    return out;
  }
  if (typeof value === "object") {
    out += "<" + name + ">";
    for (const child in value) out = renderValue(child, value[child], out);
    return out + "</" + name + ">";
  }
  const text = typeof value === "string" ? value : String(value);
  return out + "<" + name + ">" + escapeXml(text) + "</" + name + ">";
}

function openDocument(rootName: string, options: { namespace?: boolean }): string {
  const out = '<?xml version="1.0" encoding="UTF-8"?>\n';
  return out + (options.namespace === false ? `<${rootName}>` : `<${rootName} xmlns="${S3_XMLNS}">`);
}

/** Render a document with one root element carrying the S3 namespace. */
export function renderXml(rootName: string, body: XmlNode, options: { namespace?: boolean } = {}): string {
  let out = openDocument(rootName, options);
  for (const child in body) out = renderValue(child, body[child], out);
  return out + `</${rootName}>`;
}

/** Elements of the root's lists rendered between two looks at the clock. */
const ELEMENTS_PER_CLOCK_CHECK = 32;

/**
 * renderXml for documents with long lists (a 1,000-key listing renders in about 2 ms): the
 * elements of the root's lists are rendered in turns of LOOP_TURN_BUDGET_MS (runInTurns), the
 * event loop free between them. The text is renderXml's, byte for byte.
 */
export function renderXmlInTurns(rootName: string, body: XmlNode, options: { namespace?: boolean } = {}): Promise<string> {
  return runInTurns(renderXmlSteps(rootName, body, options), { budgetMs: LOOP_TURN_BUDGET_MS, stepsPerClockCheck: ELEMENTS_PER_CLOCK_CHECK });
}

/** renderXml's walk, yielding after each element of the root's lists. */
function* renderXmlSteps(rootName: string, body: XmlNode, options: { namespace?: boolean }): Generator<void, string, void> {
  let out = openDocument(rootName, options);
  for (const child in body) {
    const value = body[child];
    if (child === ORDERED) {
      for (const [name, item] of value as Array<[string, XmlValue]>) {
        out = renderValue(name, item, out);
        yield;
      }
    } else if (Array.isArray(value)) {
      for (const item of value) {
        out = renderValue(child, item as XmlValue, out);
        yield;
      }
    } else if (value instanceof MappedList) {
      for (let index = 0; index < value.length; index++) {
        out = renderValue(child, value.nodeAt(index), out);
        yield;
      }
    } else {
      out = renderValue(child, value, out);
    }
  }
  return out + `</${rootName}>`;
}

const parser = new XMLParser({
  ignoreAttributes: true,
  removeNSPrefix: true,
  parseTagValue: false,
  trimValues: false,
  processEntities: true,
  isArray: () => false,
});

/** Parse a request body; undefined when it is not well-formed XML. */
export function parseXml(text: string): Record<string, unknown> | undefined {
  try {
    const parsed = parser.parse(text, true) as Record<string, unknown>;
    return parsed;
  } catch {
    // Malformed input is the client's error; the caller answers MalformedXML.
    return undefined;
  }
}

/** Elements that may repeat come back as one object or an array; always give an array. */
export function asArray<T>(value: T | T[] | undefined): T[] {
  if (value === undefined) return [];
  return Array.isArray(value) ? value : [value];
}

/** ISO 8601 of a time in ms; the last is remembered: objects written together share it, and listings repeat it. */
export const isoTimestamp: (ms: number) => string = rememberLast((ms: number) => new Date(ms).toISOString());

/**
 * Seconds formatted lately. A GET formats two (the response's Date and the object's
 * Last-Modified), so remembering only the last one missed nearly every time, and toUTCString was
 * 1.7% of a 4 KiB GET's server CPU; objects written in the same few minutes share their seconds.
 */
const HTTP_DATE_CACHE_ENTRIES_MAX = 4_096;
const httpDates = new Map<number, string>();

/** RFC 7231 date of a time in ms. */
export function httpDate(ms: number): string {
  const secondMs = Math.floor(ms / 1000) * 1000;
  return httpDates.get(secondMs) ?? setInBoundedCache(httpDates, secondMs, new Date(secondMs).toUTCString(), HTTP_DATE_CACHE_ENTRIES_MAX);
}
