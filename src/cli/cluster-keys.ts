/**
 * Keys of a cluster derived from its one shared secret: the master key that seals users'
 * secrets at rest must be the same in every process that reads them (placement, gateways).
 */
import { hkdfSync } from "node:crypto";

export function masterKeyFromClusterSecret(clusterSecret: string): Buffer {
  return Buffer.from(hkdfSync("sha256", clusterSecret, "cairn", "cairn master key v1", 32));
}
