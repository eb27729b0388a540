import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ObjectMapping } from "./object-mapping.js";

/** Opens the mapping at `path` in a fresh process and prints "opened" or the error's name. */
function openInAnotherProcess(path: string): string {
  const script = `
    import { ObjectMapping } from ${JSON.stringify(new URL("./object-mapping.js", import.meta.url).href)};
    try {
      const mapping = ObjectMapping.open(${JSON.stringify(path)});
      await mapping.close();
      console.log("opened");
    } catch (error) {
      console.log(error.name);
    }
  `;
  const result = spawnSync(process.execPath, ["--input-type=module", "-e", script], { timeout: 15_000, encoding: "utf8" });
  assert.equal(result.status, 0, result.stderr);
  return result.stdout.trim();
}

test("a second process cannot open a data node's mapping while one holds it, and can once it is closed", async (t) => {
  const directory = mkdtempSync(join(tmpdir(), "cairn-mapping-"));
  t.after(() => rmSync(directory, { recursive: true, force: true }));
  const path = join(directory, "mapping.sqlite");
  const mapping = ObjectMapping.open(path);
  assert.equal(openInAnotherProcess(path), "MappingInUse");
  await mapping.close();
  assert.equal(openInAnotherProcess(path), "opened");
});
