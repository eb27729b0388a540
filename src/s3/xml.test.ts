// Proves renderXmlInTurns: the same text as renderXml, byte for byte, for every kind of value,
// with the event loop running between its turns on a long list.
import { test } from "node:test";
import assert from "node:assert/strict";
import { loopTurnsDuring } from "../../test/helpers/loop-turns.js";
import { MappedList, ORDERED, renderXml, renderXmlInTurns, type XmlNode } from "./xml.js";

function listing(entryCount: number): XmlNode {
  return {
    Name: "bucket",
    Prefix: "a&b<c>",
    MaxKeys: 1000,
    IsTruncated: true,
    Contents: Array.from({ length: entryCount }, (_, index) => ({
      Key: `key-${index}'"\r`,
      Size: index,
      Owner: { ID: "owner", DisplayName: "owner" },
    })),
    CommonPrefixes: [{ Prefix: "p/" }, { Prefix: "q/" }],
    [ORDERED]: [
      ["Version", { Key: "v", IsLatest: false }],
      ["DeleteMarker", { Key: "d", IsLatest: true }],
    ],
    Nested: [["inner-1", "inner-2"], "outer"],
    Missing: undefined,
  };
}

test("renderXmlInTurns writes what renderXml writes", async () => {
  for (const entryCount of [0, 1, 31, 32, 33, 5000]) {
    const body = listing(entryCount);
    assert.equal(await renderXmlInTurns("ListBucketResult", body), renderXml("ListBucketResult", body));
    assert.equal(await renderXmlInTurns("Root", body, { namespace: false }), renderXml("Root", body, { namespace: false }));
  }
});

test("a MappedList renders as the array of its nodes would, in both renderers", async () => {
  for (const entryCount of [0, 1, 33, 500]) {
    const eager = listing(entryCount);
    const sizes = Array.from({ length: entryCount }, (_, index) => index);
    const lazy: XmlNode = { ...eager, Contents: MappedList.of(sizes, (index) => ({ Key: `key-${index}'"\r`, Size: index, Owner: { ID: "owner", DisplayName: "owner" } })) };
    const expected = renderXml("ListBucketResult", eager);
    assert.equal(renderXml("ListBucketResult", lazy), expected);
    assert.equal(await renderXmlInTurns("ListBucketResult", lazy), expected);
  }
});

test("renderXmlInTurns gives the event loop back while it renders a long list", async () => {
  // 20,000 elements take tens of milliseconds: many times the turn budget (LOOP_TURN_BUDGET_MS).
  const { value: xml, loopTurns: turnsOfTheLoop } = await loopTurnsDuring(() => renderXmlInTurns("ListBucketResult", listing(20_000)));
  assert.ok(xml.endsWith("</ListBucketResult>"));
  assert.ok(turnsOfTheLoop >= 2, `the loop ran ${turnsOfTheLoop} times while 20,000 elements were rendered`);
});
