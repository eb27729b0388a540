/** XML in and out: a tiny escaping builder for responses, fast-xml-parser for request bodies. */
import { XMLParser } from "fast-xml-parser";

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
export type XmlValue = string | number | boolean | undefined | XmlNode | XmlValue[] | Array<[string, XmlValue]>;
export interface XmlNode {
  [name: string]: XmlValue;
}
export const ORDERED = "#ordered";

function renderValue(name: string, value: XmlValue, out: string[]): void {
  if (value === undefined) return;
  if (name === ORDERED) {
    for (const [childName, childValue] of value as Array<[string, XmlValue]>) renderValue(childName, childValue, out);
    return;
  }
  if (Array.isArray(value)) {
    for (const item of value) renderValue(name, item, out);
    return;
  }
  if (typeof value === "object") {
    out.push(`<${name}>`);
    for (const [child, childValue] of Object.entries(value)) renderValue(child, childValue, out);
    out.push(`</${name}>`);
    return;
  }
  out.push(`<${name}>${escapeXml(String(value))}</${name}>`);
}

/** Render a document with one root element carrying the S3 namespace. */
export function renderXml(rootName: string, body: XmlNode, options: { namespace?: boolean } = {}): string {
  const out: string[] = ['<?xml version="1.0" encoding="UTF-8"?>\n'];
  out.push(options.namespace === false ? `<${rootName}>` : `<${rootName} xmlns="${S3_XMLNS}">`);
  for (const [child, value] of Object.entries(body)) renderValue(child, value, out);
  out.push(`</${rootName}>`);
  return out.join("");
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

export function isoTimestamp(ms: number): string {
  return new Date(ms).toISOString();
}

export function httpDate(ms: number): string {
  return new Date(ms).toUTCString();
}
