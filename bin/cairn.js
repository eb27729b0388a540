#!/usr/bin/env -S node --initial-old-space-size=64
// The `cairn` command: compiled TypeScript lives in dist/ (`npm run build`).
import { existsSync } from "node:fs";

const entry = new URL("../dist/src/cli/main.js", import.meta.url);
if (!existsSync(entry)) {
  console.error("cairn: dist/ is missing; run `npm run build` first");
  process.exit(1);
}
import(entry.href)
  .then((cli) => cli.main(process.argv.slice(2)))
  .catch((error) => {
    console.error(error);
    process.exit(1);
  });
