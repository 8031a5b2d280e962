import { DurableObject } from "cloudflare:workers";
import type { Env } from "../worker/env";

/**
 * One HTTP `Idempotency-Key` of one caller (object name: `<caller id>:<key>`). The first
 * request's answer is stored here and replayed for IDEMPOTENCY_TTL; a request with the same
 * key and another fingerprint (method, path, query, MQTT headers, body) is refused; one
 * that arrives while the first is running waits here for its answer (one object, one
 * thread: `begin` decides atomically, so two requests never both publish).
 *
 * A request that dies mid-publish (its Worker killed) leaves a running record. After
 * IDEMPOTENCY_STALE_MS without an answer the next request with that key takes over and
 * publishes again, with the same message identifiers: QoS 2 subscribers drop the copies
 * (their sessions remember identifiers), QoS 0/1 ones may get the messages that had gone
 * out twice. At least once in that crash only; never refused forever for a crash that is
 * not the caller's fault.
 */
export const IDEMPOTENCY_STALE_MS = 60_000;

/** What `begin` tells the Worker. */
export type BeginResult =
  /** Run the request; report with `finish` or `release` quoting `attempt`. `token` is the same for every attempt. */
  | { kind: "run"; token: string; attempt: number }
  /** The first request's answer. */
  | { kind: "replay"; status: number; body: string; contentType: string }
  /** The key was used with another request. */
  | { kind: "mismatch" };

interface IdemRecord {
  fingerprint: string;
  token: string;
  attempt: number;
  startedAt: number;
  answer?: { status: number; body: string; contentType: string; at: number };
  /** The last attempt failed without an answer: the next request runs again (same token). */
  released?: boolean;
  /** When the whole record is deleted (alarm). */
  expiresAt: number;
}

const KEY = "record";

export class IdempotencyDO extends DurableObject<Env> {
  #waiters = new Set<() => void>();

  #record(): IdemRecord | undefined {
    return this.ctx.storage.kv.get<IdemRecord>(KEY);
  }

  #save(record: IdemRecord): void {
    this.ctx.storage.kv.put(KEY, record);
    void this.ctx.storage.setAlarm(record.expiresAt);
  }

  #wake(): void {
    const waiters = [...this.#waiters];
    this.#waiters.clear();
    for (const w of waiters) w();
  }

  async begin(fingerprint: string, ttlMs: number, staleMs = IDEMPOTENCY_STALE_MS): Promise<BeginResult> {
    for (;;) {
      const now = Date.now();
      let record = this.#record();
      if (record && record.expiresAt <= now) {
        this.ctx.storage.kv.delete(KEY);
        record = undefined;
      }
      if (record?.released && record.fingerprint !== fingerprint) record = undefined; // nothing was answered: a new request
      if (!record) {
        const fresh: IdemRecord = { fingerprint, token: crypto.randomUUID().replace(/-/g, "").slice(0, 24), attempt: 1, startedAt: now, expiresAt: now + ttlMs + staleMs };
        this.#save(fresh);
        return { kind: "run", token: fresh.token, attempt: fresh.attempt };
      }
      if (record.fingerprint !== fingerprint) return { kind: "mismatch" };
      if (record.answer) return { kind: "replay", status: record.answer.status, body: record.answer.body, contentType: record.answer.contentType };
      const age = now - record.startedAt;
      if (record.released || age >= staleMs) {
        // The last attempt failed, or gave no answer within the bound: run again (see the class comment).
        const taken: IdemRecord = { ...record, released: false, attempt: record.attempt + 1, startedAt: now, expiresAt: now + ttlMs + staleMs };
        this.#save(taken);
        return { kind: "run", token: taken.token, attempt: taken.attempt };
      }
      // A concurrent duplicate: wait for the first one's answer (or its release, or the bound).
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, staleMs - age);
        function done(): void {
          clearTimeout(timer);
          resolve();
        }
        this.#waiters.add(done);
      });
    }
  }

  /** The running attempt's answer: stored and replayed until IDEMPOTENCY_TTL after now. */
  async finish(attempt: number, status: number, body: string, contentType: string, ttlMs: number): Promise<void> {
    const record = this.#record();
    if (!record || record.attempt !== attempt || record.answer) return;
    const now = Date.now();
    this.#save({ ...record, answer: { status, body, contentType, at: now }, expiresAt: now + ttlMs });
    this.#wake();
  }

  /**
   * The running attempt ended without an answer worth keeping (refused before publishing
   * anything, or failed): the key is free again, and a waiting duplicate runs it itself.
   */
  async release(attempt: number): Promise<void> {
    const record = this.#record();
    if (!record || record.attempt !== attempt || record.answer) return;
    // Kept (with its token) so that a retry publishes under the same message identifiers.
    this.#save({ ...record, released: true });
    this.#wake();
  }

  override async alarm(): Promise<void> {
    const record = this.#record();
    if (record && record.expiresAt > Date.now()) {
      await this.ctx.storage.setAlarm(record.expiresAt);
      return;
    }
    await this.ctx.storage.deleteAll();
  }
}
