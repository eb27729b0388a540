/**
 * Leader election and leader discovery on etcd, with no home-made consensus:
 *
 * Campaign (EtcdElection): a candidate grants itself a lease of LEADER_LEASE_TTL_SECONDS and,
 * in one transaction, creates the leader key with its value (its RPC URL) attached to that
 * lease — only if the key does not exist (create_revision == 0). The winner keeps the lease
 * alive every LEADER_KEEPALIVE_INTERVAL_MS. The key's create_revision is the term's fencing
 * token: writes of the leader are transactions that compare it, so a deposed leader that has
 * not noticed yet cannot change anything. Losers watch the key and campaign again when it is
 * deleted (the leader resigned: revoked lease) or expires (the leader died: no keep-alive for
 * a TTL). Takeover after a SIGKILL therefore takes at most TTL + one poll interval.
 *
 * A leader steps down on its own when its lease is gone (keep-alive answers TTL 0), or when it
 * could not renew it for so long that it may have expired (etcd unreachable): better no leader
 * for a moment than two that both act.
 *
 * Discovery (EtcdKeyFollower): gateways, data nodes and standbys read the key and watch it; the
 * value is the current leader's URL, or undefined while there is none.
 */
import { log, SECOND_MS } from "../base/index.js";
import type { EtcdClient, EtcdWatch, KeyValue } from "./etcd-client.js";
import { registerRpcError } from "./rpc.js";

/** The leader's lease: a SIGKILLed leader is replaced after at most this (plus a poll). */
export const LEADER_LEASE_TTL_SECONDS = 5;
/** The leader renews its lease this often (several renewals per TTL, so one lost call is harmless). */
export const LEADER_KEEPALIVE_INTERVAL_MS = 1 * SECOND_MS;
/** A leader that has not renewed for TTL minus this steps down: its lease may expire any moment. */
export const LEADER_STEP_DOWN_MARGIN_MS = 1 * SECOND_MS;
/** Standbys and followers re-read the key this often besides watching it (a watch may hang). */
export const LEADER_KEY_POLL_INTERVAL_MS = 2 * SECOND_MS;
/** Wait after a failed etcd call before a campaign or a watch tries again. */
export const ETCD_RETRY_DELAY_MS = 500;

/**
 * This process does not lead (a placement standby, or a leader deposed mid-request). Carries
 * the leader's URL when known, so a caller can go there; travels typed over RPC.
 */
export class NotLeader extends Error {
  override name = "NotLeader";
  constructor(readonly leaderUrl: string) {
    super(leaderUrl === "" ? "not the leader, and no leader is known" : `not the leader; the leader is ${leaderUrl}`);
  }
}
registerRpcError("NotLeader", (_message, fields) => new NotLeader(typeof fields.leaderUrl === "string" ? fields.leaderUrl : ""));

/** One term of leadership: the lease that holds the key, and the key's create revision (fencing token). */
export interface LeaderTerm {
  leaseId: string;
  createRevision: number;
}

export interface EtcdElectionOptions {
  client: EtcdClient;
  key: string;
  /** What followers read from the key: the leader's RPC URL. */
  value: string;
  /** Called when this candidate wins; the term ends when it resolves onDemoted. */
  onElected: (term: LeaderTerm) => Promise<void>;
  /** Called when a term ends (lease lost, resign); awaited before campaigning again. */
  onDemoted: (reason: string) => Promise<void>;
  ttlSeconds?: number;
}

export class EtcdElection {
  private readonly ttlSeconds: number;
  private stopped = false;
  private running: Promise<void> | undefined;
  private currentTerm: LeaderTerm | undefined;
  /** Wakes whatever the campaign loop is waiting on (a standby's wait, a leader's keep-alive sleep). */
  private wake: (() => void) | undefined;
  private demoteRequest: string | undefined;

  constructor(private readonly options: EtcdElectionOptions) {
    this.ttlSeconds = options.ttlSeconds ?? LEADER_LEASE_TTL_SECONDS;
  }

  get term(): LeaderTerm | undefined {
    return this.currentTerm;
  }

  start(): void {
    this.running ??= this.campaignLoop();
  }

  /**
   * Ends this term now (a fenced write failed: someone else leads). The campaign goes on, so
   * this candidate may win a later term.
   */
  stepDown(reason: string): void {
    if (this.currentTerm === undefined) return;
    this.demoteRequest = reason;
    this.wake?.();
  }

  /** Stop campaigning; a leader revokes its lease so a standby takes over at once. */
  async resign(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.running;
  }

  private async campaignLoop(): Promise<void> {
    while (!this.stopped) {
      try {
        await this.campaignOnce();
      } catch (error) {
        log.warn({ error, key: this.options.key }, "leader election: etcd call failed; retrying");
        await this.sleep(ETCD_RETRY_DELAY_MS);
      }
    }
  }

  private async campaignOnce(): Promise<void> {
    const { client, key, value } = this.options;
    const { leaseId } = await client.leaseGrant(this.ttlSeconds);
    let won: { revision: number; holder: KeyValue | undefined };
    try {
      const result = await client.txn({
        compare: [{ key, target: "create", createRevision: 0 }],
        success: [{ put: { key, value, lease: leaseId } }],
        failure: [{ range: { key } }],
      });
      won = { revision: result.succeeded ? result.revision : 0, holder: result.ranges[0]?.[0] };
    } catch (error) {
      await client.leaseRevoke(leaseId).catch(() => undefined); // it expires by itself otherwise
      throw error;
    }
    if (won.revision === 0) {
      await client.leaseRevoke(leaseId).catch(() => undefined);
      await this.waitForVacancy(won.holder);
      return;
    }
    await this.lead({ leaseId, createRevision: won.revision });
  }

  /** Hold the term: keep the lease alive until it is lost, a step-down is asked, or we resign. */
  private async lead(term: LeaderTerm): Promise<void> {
    const { client, key } = this.options;
    this.currentTerm = term;
    this.demoteRequest = undefined;
    log.info({ key, value: this.options.value, createRevision: term.createRevision }, "elected leader");
    let reason: string | undefined;
    try {
      await this.options.onElected(term);
    } catch (error) {
      reason = `taking office failed: ${(error as Error).message}`;
    }
    // A renewal confirms the lease from the moment it was sent; etcd counts the TTL from then.
    let confirmedAtMs = Date.now();
    while (reason === undefined) {
      await this.sleep(LEADER_KEEPALIVE_INTERVAL_MS);
      if (this.stopped) reason = "resigned";
      else if (this.demoteRequest !== undefined) reason = this.demoteRequest;
      if (reason !== undefined) break;
      const sentAtMs = Date.now();
      try {
        const ttlSeconds = await client.leaseKeepAlive(term.leaseId);
        if (ttlSeconds <= 0) reason = "lease expired";
        else confirmedAtMs = sentAtMs;
      } catch (error) {
        if (Date.now() - confirmedAtMs >= this.ttlSeconds * SECOND_MS - LEADER_STEP_DOWN_MARGIN_MS) {
          reason = `lease not renewed for ${Date.now() - confirmedAtMs} ms: ${(error as Error).message}`;
        }
      }
    }
    this.currentTerm = undefined;
    log.warn({ key, reason }, "leadership ended");
    await this.options.onDemoted(reason).catch((error: unknown) => log.error({ error }, "stepping down failed"));
    // Revoke: the key goes at once, so a standby need not wait out the TTL (best effort).
    await client.leaseRevoke(term.leaseId).catch(() => undefined);
  }

  /** A standby: wait until the key is gone (watched, and re-read every poll interval). */
  private async waitForVacancy(holder: KeyValue | undefined): Promise<void> {
    if (holder === undefined) return; // deleted between our txn and now: campaign at once
    const { client, key } = this.options;
    let vacant = false;
    const watch: EtcdWatch = client.watch(key, { startRevision: holder.modRevision + 1 }, (events) => {
      if (events.some((event) => event.type === "delete")) {
        vacant = true;
        this.wake?.();
      }
    });
    watch.done.catch(() => undefined); // a broken watch leaves the poll below
    try {
      while (!vacant && !this.stopped) {
        await this.sleep(LEADER_KEY_POLL_INTERVAL_MS);
        if (vacant || this.stopped) break;
        const current = await client.get(key).catch(() => holder);
        if (current === undefined || current.createRevision !== holder.createRevision) vacant = true;
      }
    } finally {
      watch.cancel();
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.wake = () => {
        this.wake = undefined;
        done();
      };
    });
  }
}

/**
 * Follows one key: its current value, undefined while it does not exist. Reads it, watches it
 * from there, and re-reads it every LEADER_KEY_POLL_INTERVAL_MS, so a broken or hung watch
 * costs at most one poll interval. While etcd is unreachable the last value seen is kept.
 */
export class EtcdKeyFollower {
  private currentValue: string | undefined;
  private modRevision = 0;
  private readonly listeners: Array<(value: string | undefined) => void> = [];
  private watch: EtcdWatch | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private firstRead: Promise<void> | undefined;

  constructor(
    private readonly client: EtcdClient,
    readonly key: string,
  ) {}

  /** Starts following; resolves after the first read (or its failure, logged). */
  start(): Promise<void> {
    this.firstRead ??= this.resync();
    return this.firstRead;
  }

  value(): string | undefined {
    return this.currentValue;
  }

  onChange(listener: (value: string | undefined) => void): void {
    this.listeners.push(listener);
  }

  close(): void {
    this.closed = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.watch?.cancel();
  }

  private async resync(): Promise<void> {
    if (this.closed) return;
    try {
      const { kvs, revision } = await this.client.range(this.key);
      const kv = kvs[0];
      this.apply(kv?.value, kv?.modRevision ?? revision);
      if (this.watch === undefined) this.startWatch(revision + 1);
    } catch (error) {
      log.debug({ error, key: this.key }, "could not read a followed etcd key; keeping the last value");
    }
    if (!this.closed) {
      this.timer = setTimeout(() => void this.resync(), LEADER_KEY_POLL_INTERVAL_MS);
      this.timer.unref();
    }
  }

  private startWatch(startRevision: number): void {
    const watch = this.client.watch(this.key, { startRevision }, (events) => {
      for (const event of events) this.apply(event.type === "delete" ? undefined : event.kv.value, event.kv.modRevision);
    });
    this.watch = watch;
    // When the stream breaks, the next resync starts a new one.
    watch.done.catch(() => undefined).finally(() => {
      if (this.watch === watch) this.watch = undefined;
    });
  }

  private apply(value: string | undefined, modRevision: number): void {
    if (modRevision < this.modRevision) return; // an older read racing a newer event
    this.modRevision = modRevision;
    if (value === this.currentValue) return;
    this.currentValue = value;
    for (const listener of this.listeners) listener(value);
  }
}
