/**
 * Child process for the crash tests (not a test itself). Opens a DataNode, writes needles with
 * bytes derived from their ids, several in flight at once, and prints one line per event:
 *   attempt <volumeId> <needleId> <sizeBytes>   before a write starts
 *   ack <volumeId> <needleId> <sizeBytes>       after writeNeedle resolved (durable)
 * On VolumeFull it creates the next volume and retries there. The parent kills it with SIGKILL
 * (or CAIRN_CRASH_POINT kills it) and checks every acknowledged needle after reopening.
 * Usage: node crash-child.js '<json: {disk, writeCount, concurrency, sizeBytes, volumeSizeBytes?}>'
 */
import type { VolumeId } from "../base/index.js";
import { VolumeFull } from "../cluster/index.js";
import { DataNode } from "./index.js";
import { makeNeedle, TEST_NODE_ID } from "./fixtures.js";

interface ChildOptions {
  disk: string;
  writeCount: number;
  concurrency: number;
  sizeBytes: number;
  volumeSizeBytes?: number;
}

const options = JSON.parse(process.argv[2] ?? "{}") as ChildOptions;
const node = await DataNode.open({
  nodeId: TEST_NODE_ID,
  diskDirectories: [options.disk],
  ...(options.volumeSizeBytes === undefined ? {} : { volumeSizeBytes: options.volumeSizeBytes, allowVolumeSizeBelowMinimumForTests: true }),
});
let currentVolumeId = 1 as VolumeId;
await node.createVolume(currentVolumeId);
let started = 0;

async function writeOne(): Promise<void> {
  const sizeBytes = started % 2 === 0 ? options.sizeBytes : Math.max(0, options.sizeBytes - 13);
  let needle = makeNeedle(currentVolumeId, sizeBytes);
  for (;;) {
    process.stdout.write(`attempt ${needle.volumeId} ${needle.needleId} ${sizeBytes}\n`);
    try {
      await node.writeNeedle(needle);
      process.stdout.write(`ack ${needle.volumeId} ${needle.needleId} ${sizeBytes}\n`);
      return;
    } catch (error) {
      if (!(error instanceof VolumeFull)) throw error;
      if (currentVolumeId === needle.volumeId) currentVolumeId = (currentVolumeId + 1) as VolumeId;
      await node.createVolume(currentVolumeId);
      needle = { ...needle, volumeId: currentVolumeId };
    }
  }
}

async function worker(): Promise<void> {
  while (started < options.writeCount) {
    started += 1;
    await writeOne();
  }
}

await Promise.all(Array.from({ length: options.concurrency }, () => worker()));
await node.close();
process.stdout.write("done\n");
