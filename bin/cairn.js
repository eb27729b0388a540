#!/usr/bin/env node
// The `cairn` command: compiled TypeScript lives in dist/ (`npm run build`).
import("../dist/src/cli/main.js").then((cli) => cli.main(process.argv.slice(2))).catch((error) => {
  if (error && error.code === "ERR_MODULE_NOT_FOUND") {
    console.error("cairn: dist/ is missing; run `npm run build` first");
  } else {
    console.error(error);
  }
  process.exit(1);
});
