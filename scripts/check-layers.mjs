// Import-boundary check (STYLE.md section 1): layers import downward only, and a folder is
// entered only through its index.ts. Fails listing every offending import.
import { readdirSync, readFileSync, statSync } from "node:fs";
import * as path from "node:path";

const RANK = { base: 0, ec: 1, cluster: 2, meta: 3, placement: 3, datanode: 3, auth: 4, datapath: 4, s3: 5, cli: 6 };
const root = path.resolve("src");
const problems = [];

function walk(directory) {
  for (const name of readdirSync(directory)) {
    const full = path.join(directory, name);
    if (statSync(full).isDirectory()) walk(full);
    else if (name.endsWith(".ts")) check(full);
  }
}

function check(file) {
  const layer = path.relative(root, file).split(path.sep)[0];
  const source = readFileSync(file, "utf8");
  for (const match of source.matchAll(/^\s*(?:import|export)[^;]*?from\s+"(\.[^"]+)"/gms)) {
    const target = path.resolve(path.dirname(file), match[1]);
    const relative = path.relative(root, target).split(path.sep);
    const targetLayer = relative[0];
    if (targetLayer === layer || targetLayer.startsWith("..")) continue;
    if (!(targetLayer in RANK) || !(layer in RANK)) continue;
    if (RANK[targetLayer] > RANK[layer] || (RANK[targetLayer] === RANK[layer] && targetLayer !== layer)) {
      problems.push(`${path.relative(".", file)}: ${layer} must not import ${targetLayer}`);
    }
    if (!(relative.length === 2 && relative[1] === "index.js")) {
      problems.push(`${path.relative(".", file)}: import ${targetLayer} through its index.ts, not ${match[1]}`);
    }
  }
}

walk(root);
if (problems.length > 0) {
  console.error("layer check failed:\n" + problems.join("\n"));
  process.exit(1);
}
