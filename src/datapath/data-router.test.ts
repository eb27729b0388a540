// Proves the data router's replication rules with in-memory replicas: a write is acknowledged
// by the ack level (all, majority, one); a write that cannot reach it moves to another volume
// and leaves no needle behind on the replicas that took it; reads fall over to the next
// replica and report the damaged one; bodies are cut into chunks and read back by range.
// Erasure-coded chunks: shard i lands on store i, every pattern of up to m lost shards still
// reads back, a corrupt shard is reported and decoded around, small chunks stay replicated.
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { CHUNK_SIZE_BYTES, type NeedleId, type NodeId, type VolumeId } from "../base/index.js";
import {
  ChecksumMismatch,
  NeedleNotFound,
  PeerUnavailable,
  type DamageReport,
  type NeedleStore,
  type ReadNeedleInput,
  type VolumeStatus,
  type WriteNeedleInput,
} from "../cluster/index.js";
import type { EcScheme } from "../ec/index.js";
import { sameLayout, type Placement, type VolumeReplicaSet } from "../placement/index.js";
import { EC_CHUNK_SIZE_MIN_BYTES } from "./coded-chunks.js";
import { ackCountFor, DataRouter } from "./data-router.js";

class MemoryStore implements NeedleStore {
  readonly needles = new Map<string, Buffer>();
  failWrites = false;
  corrupt = false;
  constructor(readonly nodeId: NodeId) {}
  async createVolume(): Promise<void> {}
  async writeNeedle(input: WriteNeedleInput): Promise<void> {
    if (this.failWrites) throw new PeerUnavailable(this.nodeId, "down");
    this.needles.set(`${input.volumeId}/${input.needleId}`, Buffer.from(input.data));
  }
  async readNeedle(input: ReadNeedleInput): Promise<Buffer> {
    const data = this.needles.get(`${input.volumeId}/${input.needleId}`);
    if (data === undefined) throw new NeedleNotFound(input.volumeId, input.needleId);
    if (this.corrupt) throw new ChecksumMismatch(input.volumeId, input.needleId);
    const offset = input.offsetBytes ?? 0;
    return data.subarray(offset, offset + (input.lengthBytes ?? data.length - offset));
  }
  async deleteNeedle(input: { volumeId: VolumeId; needleId: NeedleId }): Promise<void> {
    this.needles.delete(`${input.volumeId}/${input.needleId}`);
  }
  async volumeStatuses(): Promise<VolumeStatus[]> {
    return [];
  }
  async close(): Promise<void> {}
}

class FixedPlacement implements Placement {
  readonly damage: DamageReport[] = [];
  readonly unreachable: NodeId[] = [];
  /** Volumes listed in `coded` are erasure-coded with that scheme (store i holds shard i). */
  constructor(
    readonly volumes: Map<VolumeId, MemoryStore[]>,
    readonly coded = new Map<VolumeId, EcScheme>(),
  ) {}
  async writableVolume(options: { exclude?: ReadonlySet<VolumeId>; ec?: EcScheme | null } = {}): Promise<VolumeReplicaSet> {
    const ids = [...this.volumes.keys()].filter((id) => sameLayout(this.coded.get(id) ?? null, options.ec ?? null));
    const volumeId = ids.find((id) => !options.exclude?.has(id)) ?? ids[0]!;
    return this.set(volumeId);
  }
  private set(volumeId: VolumeId): VolumeReplicaSet {
    const replicas = this.volumes.get(volumeId)!;
    return { volumeId, replicas, healthy: replicas.map((store) => !store.failWrites), ec: this.coded.get(volumeId) ?? null };
  }
  async volumeFull(): Promise<void> {}
  reportDamage(report: DamageReport): void {
    this.damage.push(report);
  }
  reportUnreachable(nodeId: NodeId): void {
    this.unreachable.push(nodeId);
  }
  async replicasOf(volumeId: VolumeId): Promise<VolumeReplicaSet> {
    return this.set(volumeId);
  }
  async close(): Promise<void> {}
}

function stores(prefix: string): MemoryStore[] {
  return [1, 2, 3].map((index) => new MemoryStore(`${prefix}${index}` as NodeId));
}

async function* once(data: Buffer): AsyncGenerator<Buffer> {
  yield data;
}

async function collect(pieces: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const piece of pieces) parts.push(piece);
  return Buffer.concat(parts);
}

test("ack counts: all is every replica, majority more than half, one is one", () => {
  assert.deepEqual([1, 2, 3, 5].map((count) => ackCountFor("all", count)), [1, 2, 3, 5]);
  assert.deepEqual([1, 2, 3, 5].map((count) => ackCountFor("majority", count)), [1, 2, 2, 3]);
  assert.deepEqual([1, 2, 3, 5].map((count) => ackCountFor("one", count)), [1, 1, 1, 1]);
});

test("ack=all: a replica that fails moves the write to another volume and leaves no needle behind", async () => {
  const first = stores("a");
  const second = stores("b");
  first[2]!.failWrites = true;
  const placement = new FixedPlacement(new Map([[1 as VolumeId, first], [2 as VolumeId, second]]));
  const router = new DataRouter(placement, "all");
  const data = randomBytes(1000);
  const { chunks } = await router.writeBody(once(data), { sizeBytesMax: 1 << 30 });
  assert.equal(chunks[0]!.volumeId, 2);
  await new Promise((resolve) => setImmediate(resolve));
  for (const store of first) assert.equal(store.needles.size, 0, `${store.nodeId} holds no orphan`);
  for (const store of second) assert.equal(store.needles.size, 1);
  assert.deepEqual(placement.unreachable, ["a3"]);
});

test("ack=all: a retry on the same volume after an abandoned attempt stores the chunk on every replica", async () => {
  // Data nodes keep a tombstone for a deleted needle and acknowledge a later write of that id
  // without storing it; the abandoned attempt's copies are deleted, so a retry that reused the id
  // on the same (only) volume would be acknowledged by replicas holding nothing.
  class TombstoningStore extends MemoryStore {
    readonly tombstones = new Set<string>();
    failWritesLeft = 0;
    override async writeNeedle(input: WriteNeedleInput): Promise<void> {
      if (this.failWritesLeft > 0) {
        this.failWritesLeft -= 1;
        throw new PeerUnavailable(this.nodeId, "down for a moment");
      }
      if (this.tombstones.has(`${input.volumeId}/${input.needleId}`)) return;
      await super.writeNeedle(input);
    }
    override async deleteNeedle(input: { volumeId: VolumeId; needleId: NeedleId }): Promise<void> {
      this.tombstones.add(`${input.volumeId}/${input.needleId}`);
      await super.deleteNeedle(input);
    }
  }
  const replicas = [1, 2, 3].map((index) => new TombstoningStore(`t${index}` as NodeId));
  replicas[2]!.failWritesLeft = 1;
  const router = new DataRouter(new FixedPlacement(new Map([[1 as VolumeId, replicas]])), "all");
  const data = randomBytes(1000);
  const { chunks } = await router.writeBody(once(data), { sizeBytesMax: 1 << 30 });
  assert.equal(chunks[0]!.volumeId, 1);
  for (const store of replicas) {
    const read = await store.readNeedle({ volumeId: 1 as VolumeId, needleId: chunks[0]!.needleId });
    assert.ok(read.equals(data), `${store.nodeId} holds the acknowledged chunk`);
  }
});

test("ack=majority: one failed replica of three still acknowledges on the same volume", async () => {
  const replicas = stores("a");
  replicas[0]!.failWrites = true;
  const router = new DataRouter(new FixedPlacement(new Map([[1 as VolumeId, replicas]])), "majority");
  const { chunks } = await router.writeBody(once(randomBytes(10)), { sizeBytesMax: 1 << 30 });
  assert.equal(chunks[0]!.volumeId, 1);
  assert.equal(replicas[1]!.needles.size + replicas[2]!.needles.size, 2);
});

test("a body is cut into chunks and any range reads back", async () => {
  const router = new DataRouter(new FixedPlacement(new Map([[1 as VolumeId, stores("a")]])));
  const data = randomBytes(2 * CHUNK_SIZE_BYTES + 12345);
  const { chunks, sizeBytes } = await router.writeBody(once(data), { sizeBytesMax: 1 << 30 });
  assert.equal(sizeBytes, data.length);
  assert.deepEqual(chunks.map((chunk) => chunk.sizeBytes), [CHUNK_SIZE_BYTES, CHUNK_SIZE_BYTES, 12345]);
  assert.ok((await collect(router.readRange(chunks, 0, data.length))).equals(data));
  const start = CHUNK_SIZE_BYTES - 10;
  const end = 2 * CHUNK_SIZE_BYTES + 5;
  assert.ok((await collect(router.readRange(chunks, start, end))).equals(data.subarray(start, end)));
});

test("a read falls over past a corrupt replica and reports it", async () => {
  const replicas = stores("a");
  const placement = new FixedPlacement(new Map([[1 as VolumeId, replicas]]));
  const router = new DataRouter(placement);
  const data = randomBytes(5000);
  const { chunks } = await router.writeBody(once(data), { sizeBytesMax: 1 << 30 });
  replicas[0]!.corrupt = true;
  assert.ok((await collect(router.readRange(chunks, 0, data.length))).equals(data));
  assert.deepEqual(placement.damage.map((report) => [report.nodeId, report.reason]), [["a1", "checksum-mismatch"]]);
});

/** A router over one replicated volume (1) and one 4+2 volume (2) of six stores. */
function codedSetup(): { router: DataRouter; placement: FixedPlacement; shards: MemoryStore[]; replicas: MemoryStore[] } {
  const replicas = stores("r");
  const shards = [1, 2, 3, 4, 5, 6].map((index) => new MemoryStore(`s${index}` as NodeId));
  const placement = new FixedPlacement(
    new Map([
      [1 as VolumeId, replicas],
      [2 as VolumeId, shards],
    ]),
    new Map([[2 as VolumeId, { k: 4, m: 2 }]]),
  );
  return { router: new DataRouter(placement), placement, shards, replicas };
}

test("EC 4+2: each chunk becomes six equal shards, one per store; every loss of up to 2 shards reads back", async (t) => {
  const { router, shards } = codedSetup();
  t.after(() => router.close());
  const data = randomBytes(CHUNK_SIZE_BYTES + 700_001);
  const { chunks } = await router.writeBody(once(data), { sizeBytesMax: 1 << 30, ec: { k: 4, m: 2 } });
  assert.deepEqual(chunks.map((chunk) => chunk.volumeId), [2, 2]);
  for (const store of shards) {
    assert.equal(store.needles.size, 2);
    assert.equal([...store.needles.values()][0]!.length, CHUNK_SIZE_BYTES / 4);
  }
  // The data shards hold the chunk itself, in order.
  const first = chunks[0]!;
  const key = `2/${first.needleId}`;
  assert.ok(Buffer.concat(shards.slice(0, 4).map((store) => store.needles.get(key)!)).equals(data.subarray(0, CHUNK_SIZE_BYTES)));

  const saved = shards.map((store) => new Map(store.needles));
  const patterns: number[][] = [[]];
  for (let a = 0; a < 6; a++) {
    patterns.push([a]);
    for (let b = a + 1; b < 6; b++) patterns.push([a, b]);
  }
  for (const lost of patterns) {
    shards.forEach((store, index) => {
      store.needles.clear();
      if (!lost.includes(index)) for (const [name, value] of saved[index]!) store.needles.set(name, value);
    });
    assert.ok((await collect(router.readRange(chunks, 0, data.length))).equals(data), `lost ${lost.join(",")}`);
    const start = 1_000_000;
    const end = CHUNK_SIZE_BYTES + 300_000;
    assert.ok((await collect(router.readRange(chunks, start, end))).equals(data.subarray(start, end)), `range, lost ${lost.join(",")}`);
  }
  // Three lost shards of six are beyond a 4+2 code: the read fails (and does not hang), whichever three.
  for (const lost of [[0, 1, 5], [2, 3, 4], [3, 4, 5]]) {
    shards.forEach((store, index) => {
      store.needles.clear();
      if (!lost.includes(index)) for (const [name, value] of saved[index]!) store.needles.set(name, value);
    });
    await assert.rejects(collect(router.readRange(chunks, 0, data.length)), `lost ${lost.join(",")}`);
  }
});

test("EC 4+2: a corrupt data shard is reported and the chunk decoded from the others", async (t) => {
  const { router, placement, shards } = codedSetup();
  t.after(() => router.close());
  const data = randomBytes(EC_CHUNK_SIZE_MIN_BYTES * 3);
  const { chunks } = await router.writeBody(once(data), { sizeBytesMax: 1 << 30, ec: { k: 4, m: 2 } });
  shards[1]!.corrupt = true;
  assert.ok((await collect(router.readRange(chunks, 0, data.length))).equals(data));
  assert.deepEqual(placement.damage.map((report) => [report.nodeId, report.reason]), [["s2", "checksum-mismatch"]]);
  // A range inside an intact data shard reads that shard alone.
  assert.ok((await collect(router.readRange(chunks, 10, 20))).equals(data.subarray(10, 20)));
  assert.equal(placement.damage.length, 1);
});

test("EC 4+2: a write acknowledges only with every shard durable, else moves on and leaves no shard behind", async (t) => {
  const failing = [1, 2, 3, 4, 5, 6].map((index) => new MemoryStore(`f${index}` as NodeId));
  const healthy = [1, 2, 3, 4, 5, 6].map((index) => new MemoryStore(`h${index}` as NodeId));
  failing[4]!.failWrites = true;
  const scheme = { k: 4, m: 2 };
  const placement = new FixedPlacement(
    new Map([
      [2 as VolumeId, failing],
      [3 as VolumeId, healthy],
    ]),
    new Map([
      [2 as VolumeId, scheme],
      [3 as VolumeId, scheme],
    ]),
  );
  const router = new DataRouter(placement);
  t.after(() => router.close());
  const data = randomBytes(EC_CHUNK_SIZE_MIN_BYTES);
  const { chunks } = await router.writeBody(once(data), { sizeBytesMax: 1 << 30, ec: scheme });
  assert.deepEqual(chunks.map((chunk) => chunk.volumeId), [3]);
  await new Promise((resolve) => setImmediate(resolve));
  for (const store of failing) assert.equal(store.needles.size, 0, `${store.nodeId} holds no orphan shard`);
  for (const store of healthy) assert.equal(store.needles.size, 1);
  assert.deepEqual(placement.unreachable, ["f5"]);
});

test("EC: chunks under the threshold are stored replicated even in a coded body", async (t) => {
  const { router, shards, replicas } = codedSetup();
  t.after(() => router.close());
  const small = randomBytes(EC_CHUNK_SIZE_MIN_BYTES - 1);
  const { chunks } = await router.writeBody(once(small), { sizeBytesMax: 1 << 30, ec: { k: 4, m: 2 } });
  assert.deepEqual(chunks.map((chunk) => chunk.volumeId), [1]);
  for (const store of replicas) assert.equal(store.needles.size, 1);
  for (const store of shards) assert.equal(store.needles.size, 0);
  assert.ok((await collect(router.readRange(chunks, 0, small.length))).equals(small));
});
