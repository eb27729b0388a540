// Runs every compiled *.test.js under dist/ with node's test runner, one file at a time
// (tests start real processes on loopback ports; running files in parallel on two cores
// would make their timeouts flaky). Node 20's runner takes no globs, so we list the files.
import { spawnSync } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import * as path from "node:path";

function collect(directory, found) {
  for (const name of readdirSync(directory)) {
    const full = path.join(directory, name);
    if (statSync(full).isDirectory()) collect(full, found);
    else if (name.endsWith(".test.js")) found.push(full);
  }
  return found;
}

const roots = process.argv.slice(2).length > 0 ? process.argv.slice(2) : ["dist/src", "dist/test"];
const files = roots.flatMap((root) => collect(root, [])).sort();
if (files.length === 0) {
  console.error("no test files found under", roots.join(", "));
  process.exit(1);
}
const result = spawnSync(process.execPath, ["--test", "--test-concurrency=1", ...files], { stdio: "inherit" });
process.exit(result.status ?? 1);
