import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { CAIRN_NODE_FLAGS, missingNodeFlags } from "./node-flags.js";

const REPO_ROOT = new URL("../../../", import.meta.url);

test("bin/cairn.js's #! line and `npm start` pass every node flag the roles need", () => {
  const shebang = readFileSync(new URL("bin/cairn.js", REPO_ROOT), "utf8").split("\n")[0]!;
  assert.match(shebang, /^#!\/usr\/bin\/env -S node /);
  const start = (JSON.parse(readFileSync(new URL("package.json", REPO_ROOT), "utf8")) as { scripts: { start: string } }).scripts.start;
  assert.ok(CAIRN_NODE_FLAGS.length > 0);
  for (const flag of CAIRN_NODE_FLAGS) assert.ok(shebang.split(" ").includes(flag), `${flag} on the #! line: ${shebang}`);
  assert.ok(start.includes(`node ${CAIRN_NODE_FLAGS.join(" ")} bin/cairn.js`), `the flags in npm start: ${start}`);
});

test("missingNodeFlags names the flags a process was started without", () => {
  assert.deepEqual(missingNodeFlags(["--enable-source-maps", ...CAIRN_NODE_FLAGS]), []);
  assert.deepEqual(missingNodeFlags([]), [...CAIRN_NODE_FLAGS]);
});
