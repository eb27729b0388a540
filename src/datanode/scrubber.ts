/**
 * The scrubber: re-reads every sealed volume at a bounded byte rate, checks each needle's CRC
 * (against the id and size its mapping row expects) and the whole-file CRC in the seal footer,
 * reports each corrupt live needle to placement as a DamageReport ("checksum-mismatch") so
 * repair rewrites it from a healthy replica, and keeps a bounded local record of what it found.
 *
 * It walks the file in order, needle by needle as the mapping places them, reading the bytes
 * between mapped needles too (tombstone needles, superseded copies), so every byte goes through
 * the file CRC once and each needle is read once. It yields to the event loop between needles
 * and sleeps to keep to its rate, so foreground reads are never starved. A volume that
 * compaction replaces mid-scrub is left for the next pass (the new file has a fresh checksum).
 */
import { SerialPasses } from "./serial-passes.js";
import { setImmediate as yieldToEventLoop } from "node:timers/promises";
import {
  assert,
  crc32,
  DAY_MS,
  log,
  MEBIBYTE,
  MINUTE_MS,
  systemClock,
  type Clock,
  type NeedleId,
  type VolumeId,
} from "../base/index.js";
import type { DamageReport } from "../cluster/index.js";
import type { DataNode, VolumeScrubAccess } from "./data-node.js";
import type { MappingRecord } from "./object-mapping.js";
import { decodeNeedle, decodeSealFooter, needleEncodedSizeBytes, NEEDLE_FLAG_TOMBSTONE, SEAL_FOOTER_SIZE_BYTES, SUPERBLOCK_SIZE_BYTES } from "./needle-codec.js";
import { RateLimiter } from "./rate-limiter.js";
import { VolumeClosed } from "./volume.js";

/** Bytes per second the scrubber reads: a 1 GiB volume every ~2 minutes, a full 4 TB disk in ~3 days. */
export const SCRUB_RATE_BYTES_PER_SECOND_DEFAULT = 8 * MEBIBYTE;
/**
 * A sealed volume is read again once its last scrub (kept in the mapping, so restarts do not
 * reset it) is this old: at the default rate a full 4 TB disk takes about six days.
 */
export const SCRUB_INTERVAL_MS_DEFAULT = 7 * DAY_MS;
/** How often an idle scrubber looks for volumes that are due. */
export const SCRUB_CHECK_INTERVAL_MS = MINUTE_MS;
/** Bytes read at once between mapped needles (gaps); needles themselves are read whole. */
export const SCRUB_GAP_READ_SIZE_BYTES_MAX = 1 * MEBIBYTE;
/** Mapping rows fetched per step. */
export const SCRUB_ROWS_PAGE_COUNT_MAX = 1024;
/** Findings kept in memory for `scrubStatus`; older ones are dropped (they were logged). */
export const SCRUB_FINDINGS_KEPT_MAX = 1000;

export type ScrubFindingKind =
  /** A live needle's bytes do not verify: reported to placement for repair. */
  | "needle-checksum-mismatch"
  /** A deleted needle's bytes do not verify: noted only (nothing to repair). */
  | "dead-needle-checksum-mismatch"
  /** The whole-file CRC does not match the footer (with or without a bad needle). */
  | "file-checksum-mismatch"
  /** The volume is marked sealed but its footer is missing or garbled. */
  | "footer-invalid";

export interface ScrubFinding {
  kind: ScrubFindingKind;
  volumeId: VolumeId;
  needleId?: NeedleId;
  offsetBytes?: number;
  foundAtMs: number;
  /** For live needles: whether placement acknowledged the damage report. */
  reported?: boolean;
}

export interface VolumeScrubResult {
  volumeId: VolumeId;
  outcome: "clean" | "damaged" | "superseded" | "skipped";
  bytesRead: number;
  needleCount: number;
  corruptNeedleIds: NeedleId[];
  fileChecksumOk?: boolean;
}

export interface ScrubStats {
  passCount: number;
  volumeScrubCount: number;
  bytesScrubbed: number;
  corruptNeedleCount: number;
  fileChecksumMismatchCount: number;
  damageReportsSent: number;
  damageReportsFailed: number;
  lastPassFinishedAtMs: number | undefined;
}

export interface ScrubberOptions {
  node: Pick<DataNode, "nodeId" | "scrubbableVolumeIds" | "scrubAccess" | "volumeScrubbedAtMs" | "recordVolumeScrubbed">;
  /** Bytes read per second, at most. Default SCRUB_RATE_BYTES_PER_SECOND_DEFAULT. */
  rateBytesPerSecond?: number;
  /** Re-read each sealed volume this long after its last scrub. Default SCRUB_INTERVAL_MS_DEFAULT. */
  intervalMs?: number;
  /** Sends a damage report to placement; rejects when no placement took it. */
  reportDamage?: (report: DamageReport) => Promise<void>;
  /**
   * Rewrites a volume whose file checksum fails while every live needle verifies (rot between
   * them: in tombstones, superseded copies, dead needles). A forced compaction does it: it copies
   * only verified needles and writes a fresh footer. Not called when a live needle is corrupt:
   * repair rewrites that needle in place first, which restores the footer's checksum.
   */
  rewriteVolume?: (volumeId: VolumeId) => Promise<void>;
  clock?: Clock;
}

export class Scrubber {
  readonly rateBytesPerSecond: number;
  private readonly intervalMs: number;
  private readonly clock: Clock;
  private readonly abort = new AbortController();
  private readonly findingList: ScrubFinding[] = [];
  private readonly counters: ScrubStats = {
    passCount: 0,
    volumeScrubCount: 0,
    bytesScrubbed: 0,
    corruptNeedleCount: 0,
    fileChecksumMismatchCount: 0,
    damageReportsSent: 0,
    damageReportsFailed: 0,
    lastPassFinishedAtMs: undefined,
  };
  private timer: NodeJS.Timeout | undefined;
  private readonly passes = new SerialPasses<VolumeScrubResult[]>();
  private stopped = false;

  constructor(private readonly options: ScrubberOptions) {
    this.rateBytesPerSecond = options.rateBytesPerSecond ?? SCRUB_RATE_BYTES_PER_SECOND_DEFAULT;
    this.intervalMs = options.intervalMs ?? SCRUB_INTERVAL_MS_DEFAULT;
    this.clock = options.clock ?? systemClock;
    assert(this.rateBytesPerSecond > 0, "the scrub rate is positive");
  }

  /** Scrubs the volumes that are due (never scrubbed, or last scrubbed an interval ago), checking every SCRUB_CHECK_INTERVAL_MS. */
  start(): void {
    if (this.stopped || this.timer !== undefined) return;
    const checkIntervalMs = Math.min(this.intervalMs, SCRUB_CHECK_INTERVAL_MS);
    const loop = async (): Promise<void> => {
      try {
        await this.runOnce({ dueOnly: true });
      } catch (error) {
        if (!this.stopped) log.warn({ error }, "scrub pass failed");
      }
      if (!this.stopped) this.timer = setTimeout(() => void loop(), checkIntervalMs);
    };
    this.timer = setTimeout(() => void loop(), checkIntervalMs);
  }

  /**
   * One pass over every sealed volume (or only `volumeId`; with `dueOnly`, only those due), least
   * recently scrubbed first. Passes never overlap.
   */
  runOnce(options: { volumeId?: VolumeId; dueOnly?: boolean } = {}): Promise<VolumeScrubResult[]> {
    return this.passes.run(() => this.pass(options));
  }

  findings(): ScrubFinding[] {
    return this.findingList.map((finding) => ({ ...finding }));
  }

  stats(): ScrubStats {
    return { ...this.counters };
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.abort.abort();
    await this.passes.settled();
  }

  private async pass(options: { volumeId?: VolumeId; dueOnly?: boolean }): Promise<VolumeScrubResult[]> {
    const { node } = this.options;
    const limiter = new RateLimiter(this.rateBytesPerSecond, this.clock, this.abort.signal);
    const nowMs = this.clock.nowMs();
    const volumeIds = node
      .scrubbableVolumeIds()
      .map((volumeId) => ({ volumeId, scrubbedAtMs: node.volumeScrubbedAtMs(volumeId) ?? -Infinity }))
      .filter((entry) => options.volumeId === undefined || entry.volumeId === options.volumeId)
      .filter((entry) => !options.dueOnly || entry.scrubbedAtMs <= nowMs - this.intervalMs)
      .sort((a, b) => a.scrubbedAtMs - b.scrubbedAtMs || a.volumeId - b.volumeId)
      .map((entry) => entry.volumeId);
    if (volumeIds.length === 0) return [];
    const results: VolumeScrubResult[] = [];
    for (const volumeId of volumeIds) {
      if (this.stopped) break;
      try {
        const result = await this.scrubVolume(volumeId, limiter);
        if (result.outcome === "clean" || result.outcome === "damaged") node.recordVolumeScrubbed(volumeId, this.clock.nowMs());
        results.push(result);
      } catch (error) {
        // Compaction swapped the volume out and closed its old file under us: the new file was
        // written from verified needles; the next pass reads it.
        if (!(error instanceof VolumeClosed)) throw error;
        results.push({ volumeId, outcome: "superseded", bytesRead: 0, needleCount: 0, corruptNeedleIds: [] });
      }
    }
    this.counters.passCount += 1;
    this.counters.lastPassFinishedAtMs = this.clock.nowMs();
    return results;
  }

  private async scrubVolume(volumeId: VolumeId, limiter: RateLimiter): Promise<VolumeScrubResult> {
    const result: VolumeScrubResult = { volumeId, outcome: "skipped", bytesRead: 0, needleCount: 0, corruptNeedleIds: [] };
    const access = this.options.node.scrubAccess(volumeId);
    if (access === undefined) return result;
    const footer = access.sealFooter;
    if (footer === undefined) {
      if (access.stateKind === "damaged") {
        this.record({ kind: "footer-invalid", volumeId });
        result.outcome = "damaged";
      }
      return result;
    }
    const walk = new FileWalk(access, limiter, (bytes) => {
      result.bytesRead += bytes;
      this.counters.bytesScrubbed += bytes;
    });
    await walk.readGap(SUPERBLOCK_SIZE_BYTES);
    let afterOffsetBytes = -1;
    let liveCorruptCount = 0;
    for (;;) {
      const page = access.needlesInFileOrder(afterOffsetBytes, SCRUB_ROWS_PAGE_COUNT_MAX);
      if (page === undefined) {
        result.outcome = "superseded";
        return result;
      }
      if (page.length === 0) break;
      for (const row of page) {
        afterOffsetBytes = row.offsetBytes;
        if (row.offsetBytes < walk.positionBytes) continue; // overlaps a needle already read: a mapping bug, not rot
        await walk.readGap(row.offsetBytes);
        const encodedSizeBytes = needleEncodedSizeBytes(row);
        let ok = false;
        if (row.offsetBytes + encodedSizeBytes <= footer.dataEndOffsetBytes) {
          const decoded = decodeNeedle(await walk.readNeedle(encodedSizeBytes));
          ok = decoded.kind === "needle" && decoded.header.needleId === row.needleId && decoded.header.dataSizeBytes === row.dataSizeBytes;
        }
        result.needleCount += 1;
        if (!ok) {
          result.corruptNeedleIds.push(row.needleId);
          if (await this.corruptNeedleFound(volumeId, row)) liveCorruptCount += 1;
        }
        // Let foreground reads in between needles, whatever the rate allows.
        await yieldToEventLoop();
      }
    }
    await walk.readGap(footer.dataEndOffsetBytes);
    const footerOnDisk = decodeSealFooter(await walk.read(footer.dataEndOffsetBytes, SEAL_FOOTER_SIZE_BYTES));
    const fileChecksumOk =
      walk.positionBytes === footer.dataEndOffsetBytes &&
      walk.fileCrc32 >>> 0 === footer.fileCrc32 >>> 0 &&
      footerOnDisk.kind === "footer" &&
      footerOnDisk.footer.fileCrc32 >>> 0 === footer.fileCrc32 >>> 0;
    result.fileChecksumOk = fileChecksumOk;
    if (!fileChecksumOk) {
      this.counters.fileChecksumMismatchCount += 1;
      log.error({ volumeId, expectedCrc32: footer.fileCrc32, actualCrc32: walk.fileCrc32 >>> 0 }, "scrubber found a volume whose file checksum does not match its footer");
      this.record({ kind: "file-checksum-mismatch", volumeId });
      if (liveCorruptCount === 0 && this.options.rewriteVolume !== undefined) {
        try {
          await this.options.rewriteVolume(volumeId);
          log.warn({ volumeId }, "rewrote a volume whose file checksum failed between its intact needles");
        } catch (error) {
          log.warn({ error, volumeId }, "could not rewrite a volume whose file checksum failed");
        }
      }
    }
    this.counters.volumeScrubCount += 1;
    result.outcome = fileChecksumOk && result.corruptNeedleIds.length === 0 ? "clean" : "damaged";
    return result;
  }

  /** A live needle is reported for repair (returns true); a dead one is only noted (nothing to repair). */
  private async corruptNeedleFound(volumeId: VolumeId, row: MappingRecord): Promise<boolean> {
    const where = { volumeId, needleId: row.needleId, offsetBytes: row.offsetBytes };
    if (row.flags & NEEDLE_FLAG_TOMBSTONE) {
      this.record({ kind: "dead-needle-checksum-mismatch", ...where });
      return false;
    }
    this.counters.corruptNeedleCount += 1;
    log.error(where, "scrubber found a corrupt needle");
    const finding = this.record({ kind: "needle-checksum-mismatch", ...where });
    finding.reported = await this.report(volumeId, row.needleId);
    return true;
  }

  private record(finding: Omit<ScrubFinding, "foundAtMs">): ScrubFinding {
    const recorded: ScrubFinding = { ...finding, foundAtMs: this.clock.nowMs() };
    this.findingList.push(recorded);
    if (this.findingList.length > SCRUB_FINDINGS_KEPT_MAX) this.findingList.splice(0, this.findingList.length - SCRUB_FINDINGS_KEPT_MAX);
    return recorded;
  }

  private async report(volumeId: VolumeId, needleId: NeedleId): Promise<boolean> {
    const reportDamage = this.options.reportDamage;
    if (reportDamage === undefined) return false;
    try {
      await reportDamage({ volumeId, needleId, nodeId: this.options.node.nodeId, reason: "checksum-mismatch" });
      this.counters.damageReportsSent += 1;
      return true;
    } catch (error) {
      // The next pass finds the needle again and retries; the finding is in our log meanwhile.
      this.counters.damageReportsFailed += 1;
      log.warn({ error, volumeId, needleId }, "could not report a corrupt needle to placement");
      return false;
    }
  }
}

/** Reads a volume file front to back at the limiter's pace, every byte through the file CRC once. */
class FileWalk {
  positionBytes = 0;
  fileCrc32 = 0;

  constructor(
    private readonly access: VolumeScrubAccess,
    private readonly limiter: RateLimiter,
    private readonly onRead: (bytes: number) => void,
  ) {}

  async read(positionBytes: number, lengthBytes: number): Promise<Buffer> {
    const bytes = await this.access.readBytes(positionBytes, lengthBytes);
    this.onRead(bytes.length);
    await this.limiter.consume(bytes.length);
    return bytes;
  }

  /** Reads [positionBytes, untilBytes) into the file CRC. */
  async readGap(untilBytes: number): Promise<void> {
    while (this.positionBytes < untilBytes) {
      const bytes = await this.read(this.positionBytes, Math.min(SCRUB_GAP_READ_SIZE_BYTES_MAX, untilBytes - this.positionBytes));
      if (bytes.length === 0) return; // shorter than its footer says; the CRC comparison catches it
      this.fileCrc32 = crc32(bytes, this.fileCrc32);
      this.positionBytes += bytes.length;
    }
  }

  /** Reads the needle at the current position into the file CRC and returns its bytes. */
  async readNeedle(encodedSizeBytes: number): Promise<Buffer> {
    const encoded = await this.read(this.positionBytes, encodedSizeBytes);
    this.fileCrc32 = crc32(encoded, this.fileCrc32);
    this.positionBytes += encoded.length;
    return encoded;
  }
}
