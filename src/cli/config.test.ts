// Proves the three sources of a setting share one name and one order: a flag beats the
// environment, which beats the JSON config file (--config or CAIRN_CONFIG), which beats the
// default; repeatable settings take lists from the file; unknown keys and malformed files are
// refused with a UsageError naming the problem.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { parseFlags, Settings, UsageError, type SettingSpec } from "./config.js";

const SPECS: readonly SettingSpec[] = [
  { flag: "listen", env: "CAIRN_LISTEN", defaultValue: "127.0.0.1:9000", help: "" },
  { flag: "etcd", env: "CAIRN_ETCD", defaultValue: undefined, help: "" },
  { flag: "meta", env: "CAIRN_META", defaultValue: "placement", help: "" },
  { flag: "disk", env: "CAIRN_DISKS", defaultValue: undefined, help: "", repeatable: true },
];

function withConfigFile(content: string, run: (file: string) => void): void {
  const directory = mkdtempSync(path.join(tmpdir(), "cairn-config-"));
  try {
    const file = path.join(directory, "cairn.json");
    writeFileSync(file, content);
    run(file);
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
}

test("flag beats environment beats config file beats default, under one name", () => {
  withConfigFile(JSON.stringify({ listen: "127.0.0.1:1", etcd: "http://file:2379", meta: "postgres://file/db", disk: ["/d1", "/d2"] }), (file) => {
    const { flags } = parseFlags(["--config", file, "--listen", "127.0.0.1:3"]);
    const settings = Settings.load(SPECS, flags, { CAIRN_LISTEN: "127.0.0.1:2", CAIRN_ETCD: "http://env:2379" });
    assert.equal(settings.get("listen"), "127.0.0.1:3");
    assert.equal(settings.get("etcd"), "http://env:2379");
    assert.equal(settings.get("meta"), "postgres://file/db");
    assert.deepEqual(settings.list("disk"), ["/d1", "/d2"]);
    const fromEnvPath = Settings.load(SPECS, new Map(), { CAIRN_CONFIG: file });
    assert.equal(fromEnvPath.get("listen"), "127.0.0.1:1", "CAIRN_CONFIG names the file too");
    assert.equal(Settings.load(SPECS, new Map(), {}).get("meta"), "placement", "no file: the default");
  });
});

test("a config file with an unknown key, a list for a single setting, or no JSON object is refused", () => {
  const cases: Array<[string, RegExp]> = [
    [JSON.stringify({ lisen: "x" }), /unknown setting "lisen"/],
    [JSON.stringify({ listen: ["a", "b"] }), /takes one value/],
    [JSON.stringify({ listen: { host: "x" } }), /must be a string/],
    ["[1, 2]", /one JSON object/],
    ["{ not json", /not JSON/],
  ];
  for (const [content, message] of cases) {
    withConfigFile(content, (file) => {
      assert.throws(() => Settings.load(SPECS, parseFlags(["--config", file]).flags, {}), (error: Error) => error instanceof UsageError && message.test(error.message));
    });
  }
  assert.throws(() => Settings.load(SPECS, parseFlags(["--config", "/nonexistent/cairn.json"]).flags, {}), /cannot read config file/);
});

test("a boolean setting takes true/false/1/0, a flag given alone is true, anything else is refused", () => {
  const specs: readonly SettingSpec[] = [{ flag: "direct-io", env: "CAIRN_DIRECT_IO", defaultValue: "false", help: "" }];
  assert.equal(new Settings(specs, new Map()).boolean("direct-io"), false, "the default");
  assert.equal(new Settings(specs, parseFlags(["--direct-io"]).flags).boolean("direct-io"), true);
  assert.equal(new Settings(specs, parseFlags(["--direct-io", "false"]).flags).boolean("direct-io"), false);
  assert.equal(new Settings(specs, new Map(), { CAIRN_DIRECT_IO: "1" }).boolean("direct-io"), true);
  assert.equal(new Settings(specs, new Map(), { CAIRN_DIRECT_IO: "0" }).boolean("direct-io"), false);
  assert.throws(() => new Settings(specs, new Map(), { CAIRN_DIRECT_IO: "yes" }).boolean("direct-io"), UsageError);
});
