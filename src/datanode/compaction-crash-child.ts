/**
 * Child process for the compaction crash test (not a test itself): opens a DataNode over a disk
 * the parent prepared, compacts volume 1 and prints `done <outcome>`. The parent sets
 * CAIRN_CRASH_POINT so the process kills itself (SIGKILL) at one step of the protocol.
 * Usage: node compaction-crash-child.js '<json: {disk, volumeSizeBytes}>'
 */
import type { VolumeId } from "../base/index.js";
import { DataNode } from "./index.js";
import { TEST_NODE_ID } from "./fixtures.js";

const options = JSON.parse(process.argv[2] ?? "{}") as { disk: string; volumeSizeBytes: number };
const node = await DataNode.open({
  nodeId: TEST_NODE_ID,
  diskDirectories: [options.disk],
  volumeSizeBytes: options.volumeSizeBytes,
  allowVolumeSizeBelowMinimumForTests: true,
});
const result = await node.compactVolume(1 as VolumeId, { garbageRatioMin: 0.3 });
await node.close();
process.stdout.write(`done ${result.outcome}\n`);
