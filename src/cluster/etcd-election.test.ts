// Proves the etcd client and leader election against a real etcd (CAIRN_TEST_ETCD_URL, started
// by scripts/start-etcd.sh): keys, prefixes, transactions and watches round-trip; of two
// candidates exactly one leads; when the leader's process is SIGKILLed the standby takes over
// once its lease expires (within TTL plus a poll, bounded generously here); a leader that
// resigns hands over at once; a leader that was hung (SIGSTOP) past its lease steps down when it
// wakes, leaving the new leader in office; a follower sees every change of the leader key.
// Skipped with the reason when CAIRN_TEST_ETCD_URL is absent, except under CI=true, where that fails.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import { EtcdClient, EtcdKeyFollower, EtcdElection, LEADER_KEEPALIVE_INTERVAL_MS, type LeaderTerm, type WatchEvent } from "./index.js";

const etcdUrl = process.env.CAIRN_TEST_ETCD_URL;
const SKIP_REASON = "CAIRN_TEST_ETCD_URL is not set (scripts/start-etcd.sh starts a local etcd)";
const CHILD_PATH = fileURLToPath(new URL("./etcd-election-child.js", import.meta.url));
const TTL_SECONDS = 2;
/** Lease TTL + a poll + etcd's own lease checking slack, doubled for a busy 2-core machine. */
const TAKEOVER_MS_MAX = 15_000;

async function waitUntil(predicate: () => boolean, what: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function spawnCandidate(key: string, value: string): { child: ChildProcess; lines: string[] } {
  const child = spawn(process.execPath, [CHILD_PATH, JSON.stringify({ endpoint: etcdUrl, key, value, ttlSeconds: TTL_SECONDS })], { stdio: ["ignore", "pipe", "inherit"] });
  const lines: string[] = [];
  let buffered = "";
  child.stdout!.on("data", (data: Buffer) => {
    buffered += data.toString();
    const parts = buffered.split("\n");
    buffered = parts.pop()!;
    lines.push(...parts);
  });
  return { child, lines };
}

function inProcessCandidate(client: EtcdClient, key: string, value: string) {
  const state = { terms: [] as LeaderTerm[], demotions: [] as string[], leading: false };
  const election = new EtcdElection({
    client,
    key,
    value,
    ttlSeconds: TTL_SECONDS,
    onElected: async (term) => {
      state.terms.push(term);
      state.leading = true;
    },
    onDemoted: async (reason) => {
      state.demotions.push(reason);
      state.leading = false;
    },
  });
  return { election, state };
}

if (etcdUrl === undefined) {
  if (process.env.CI === "true") test("etcd election runs in CI", () => assert.fail(`CI must run this test, but ${SKIP_REASON}`));
  else test("etcd election", { skip: SKIP_REASON }, () => {});
} else {
  const prefix = `/cairn-test-${randomBytes(6).toString("hex")}`;

  test("keys, prefixes, transactions and watches round-trip", async () => {
    const client = new EtcdClient(etcdUrl);
    try {
      const seen: WatchEvent[] = [];
      const start = await client.range(`${prefix}/kv/`, { prefix: true });
      const watch = client.watch(`${prefix}/kv/`, { prefix: true, startRevision: start.revision + 1 }, (events) => seen.push(...events));
      await client.put(`${prefix}/kv/b`, "two ✓");
      await client.put(`${prefix}/kv/a`, "one");
      await client.put(`${prefix}/kw`, "outside the prefix");
      const listed = await client.range(`${prefix}/kv/`, { prefix: true });
      assert.deepEqual(listed.kvs.map((kv) => [kv.key, kv.value]), [[`${prefix}/kv/a`, "one"], [`${prefix}/kv/b`, "two ✓"]]);
      const created = listed.kvs[0]!.createRevision;
      const lost = await client.txn({ compare: [{ key: `${prefix}/kv/a`, target: "create", createRevision: created + 1000 }], success: [{ put: { key: `${prefix}/kv/a`, value: "no" } }], failure: [{ range: { key: `${prefix}/kv/a` } }] });
      assert.equal(lost.succeeded, false);
      assert.equal(lost.ranges[0]![0]!.value, "one");
      const won = await client.txn({ compare: [{ key: `${prefix}/kv/a`, target: "create", createRevision: created }], success: [{ put: { key: `${prefix}/kv/a`, value: "yes" } }] });
      assert.equal(won.succeeded, true);
      assert.equal((await client.get(`${prefix}/kv/a`))!.value, "yes");
      assert.equal(await client.deleteRange(`${prefix}/kv/`, { prefix: true }), 2);
      await waitUntil(() => seen.length >= 5, "five watch events", 5_000);
      assert.deepEqual(seen.map((event) => `${event.type} ${event.kv.key.slice(prefix.length)}`), ["put /kv/b", "put /kv/a", "put /kv/a", "delete /kv/a", "delete /kv/b"]);
      watch.cancel();
      await watch.done;
      assert.equal(await client.get(`${prefix}/kw`).then((kv) => kv?.value), "outside the prefix");
    } finally {
      await client.deleteRange(prefix, { prefix: true });
      client.close();
    }
  });

  test("a SIGKILLed leader is replaced by the standby once its lease expires; a follower sees both", async () => {
    const key = `${prefix}/leader-kill`;
    const client = new EtcdClient(etcdUrl);
    const follower = new EtcdKeyFollower(client, key);
    await follower.start();
    const first = spawnCandidate(key, "http://first");
    const standby = inProcessCandidate(client, key, "http://standby");
    try {
      await waitUntil(() => first.lines.some((line) => line.startsWith("elected")), "the first candidate to lead", 10_000);
      standby.election.start();
      await waitUntil(() => follower.value() === "http://first", "the follower to see the first leader", 5_000);
      // Two keep-alive periods: the standby must still be waiting, the child still leading.
      await new Promise((resolve) => setTimeout(resolve, 2_000));
      assert.equal(standby.state.leading, false, "one leader at a time");
      first.child.kill("SIGKILL");
      const killedAtMs = Date.now();
      await waitUntil(() => standby.state.leading, "the standby to take over", TAKEOVER_MS_MAX);
      const takeoverMs = Date.now() - killedAtMs;
      console.log(`standby took over ${takeoverMs} ms after SIGKILL (lease TTL ${TTL_SECONDS} s)`);
      // The lease runs TTL from the last renewal, which may be one keep-alive interval before the kill.
      const leaseEndMsMin = TTL_SECONDS * 1000 - LEADER_KEEPALIVE_INTERVAL_MS - 500;
      assert.ok(takeoverMs >= leaseEndMsMin, `takeover after ${takeoverMs} ms: the lease cannot have expired yet`);
      await waitUntil(() => follower.value() === "http://standby", "the follower to see the new leader", 5_000);
      assert.ok(standby.state.terms[0]!.createRevision > Number(first.lines.find((line) => line.startsWith("elected"))!.split(" ")[1]), "a later term has a larger fencing token");
      await standby.election.resign();
      await waitUntil(() => follower.value() === undefined, "the follower to see no leader after resign", 5_000);
      assert.deepEqual(standby.state.demotions, ["resigned"]);
    } finally {
      first.child.kill("SIGKILL");
      await standby.election.resign();
      follower.close();
      await client.deleteRange(prefix, { prefix: true });
      client.close();
    }
  });

  test("a hung leader (SIGSTOP) is replaced, and steps down by itself when it wakes", async () => {
    const key = `${prefix}/leader-hung`;
    const client = new EtcdClient(etcdUrl);
    const first = spawnCandidate(key, "http://first");
    const standby = inProcessCandidate(client, key, "http://standby");
    try {
      await waitUntil(() => first.lines.some((line) => line.startsWith("elected")), "the first candidate to lead", 10_000);
      standby.election.start();
      first.child.kill("SIGSTOP");
      await waitUntil(() => standby.state.leading, "the standby to take over from the hung leader", TAKEOVER_MS_MAX);
      first.child.kill("SIGCONT");
      await waitUntil(() => first.lines.some((line) => line.startsWith("demoted")), "the woken leader to step down", 10_000);
      assert.equal((await client.get(key))!.value, "http://standby", "the woken leader did not take the key back");
      assert.equal(standby.state.leading, true);
      assert.deepEqual(standby.state.demotions, []);
    } finally {
      first.child.kill("SIGCONT");
      first.child.kill("SIGKILL");
      await standby.election.resign();
      await client.deleteRange(prefix, { prefix: true });
      client.close();
    }
  });

  test("a leader that resigns (SIGTERM) hands over at once, without waiting out its lease", async () => {
    const key = `${prefix}/leader-resign`;
    const client = new EtcdClient(etcdUrl);
    const first = spawnCandidate(key, "http://first");
    const standby = inProcessCandidate(client, key, "http://standby");
    try {
      await waitUntil(() => first.lines.some((line) => line.startsWith("elected")), "the first candidate to lead", 10_000);
      standby.election.start();
      await new Promise((resolve) => setTimeout(resolve, 500));
      assert.equal(standby.state.leading, false);
      const exited = new Promise((resolve) => first.child.once("exit", resolve));
      first.child.kill("SIGTERM");
      await exited;
      const resignedAtMs = Date.now();
      await waitUntil(() => standby.state.leading, "the standby to take over", TAKEOVER_MS_MAX);
      const takeoverMs = Date.now() - resignedAtMs;
      console.log(`standby took over ${takeoverMs} ms after the leader resigned`);
      assert.ok(takeoverMs < TTL_SECONDS * 1000, `handover took ${takeoverMs} ms: the standby waited for the lease instead of the revoke`);
      assert.equal((await client.get(key))!.value, "http://standby");
    } finally {
      first.child.kill("SIGKILL");
      await standby.election.resign();
      await client.deleteRange(prefix, { prefix: true });
      client.close();
    }
  });
}
