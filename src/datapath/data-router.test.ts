// Proves the data router's replication rules with in-memory replicas: a write is acknowledged
// by the ack level (all, majority, one); a write that cannot reach it moves to another volume
// and leaves no needle behind on the replicas that took it; reads fall over to the next
// replica and report the damaged one; bodies are cut into chunks and read back by range.
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
import type { Placement, VolumeReplicaSet } from "../placement/index.js";
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
  constructor(readonly volumes: Map<VolumeId, MemoryStore[]>) {}
  async writableVolume(options: { exclude?: ReadonlySet<VolumeId> } = {}): Promise<VolumeReplicaSet> {
    const ids = [...this.volumes.keys()];
    const volumeId = ids.find((id) => !options.exclude?.has(id)) ?? ids[0]!;
    return { volumeId, replicas: this.volumes.get(volumeId)! };
  }
  async volumeFull(): Promise<void> {}
  reportDamage(report: DamageReport): void {
    this.damage.push(report);
  }
  reportUnreachable(nodeId: NodeId): void {
    this.unreachable.push(nodeId);
  }
  async replicasOf(volumeId: VolumeId): Promise<VolumeReplicaSet> {
    return { volumeId, replicas: this.volumes.get(volumeId)! };
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
