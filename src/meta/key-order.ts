/**
 * Key order shared by every engine and the contract suite. S3 lists keys in the binary order of
 * their UTF-8 bytes, which is also code point order. JavaScript's `<` compares UTF-16 code units
 * and disagrees for characters above U+FFFF against U+E000..U+FFFF, so never compare keys with it.
 */

/** Negative, zero or positive as `a` sorts before, with or after `b` in UTF-8 byte order. */
export function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));
}

const CODE_POINT_MAX = 0x10ffff;
const SURROGATE_FIRST = 0xd800;
const SURROGATE_LAST = 0xdfff;

/**
 * The smallest string that sorts after every string starting with `prefix`, or undefined when
 * no string does (the prefix is empty or made only of U+10FFFF). A listing seeks here to skip a
 * whole common prefix in one index lookup.
 *
 * Incrementing the last code point is exact: a string t with prefix < t < successor must agree
 * with prefix on all but the last code point and carry the same last code point, so it starts
 * with prefix. The result is always valid UTF-16 (surrogates are skipped), so it binds as TEXT,
 * unlike incrementing the last UTF-8 byte, which can produce invalid UTF-8.
 */
export function prefixSuccessor(prefix: string): string | undefined {
  const codePoints = Array.from(prefix, (character) => character.codePointAt(0) ?? 0);
  while (codePoints.length > 0 && codePoints[codePoints.length - 1] === CODE_POINT_MAX) codePoints.pop();
  const last = codePoints.pop();
  if (last === undefined) return undefined;
  const next = last + 1 === SURROGATE_FIRST ? SURROGATE_LAST + 1 : last + 1;
  codePoints.push(next);
  return String.fromCodePoint(...codePoints);
}

/**
 * The common prefix `key` rolls up into: `prefix` plus everything up to and including the first
 * `delimiter` after it; undefined when there is no delimiter or it does not occur.
 */
export function commonPrefixOf(key: string, prefix: string, delimiter: string | undefined): string | undefined {
  if (delimiter === undefined || delimiter === "") return undefined;
  const index = key.indexOf(delimiter, prefix.length);
  if (index < 0) return undefined;
  return key.slice(0, index + delimiter.length);
}
