import { DurableObject } from "cloudflare:workers";
import { FailurePenalties } from "../core/policy/penalty";
import type { Env } from "../worker/env";
import { connectTimeoutMsFromEnv, numberVar } from "./config";
import { Meter } from "./metrics";

/** What `admit` answers: a pending-connection slot, or why not and when to try again (seconds). */
export type AdmitResult = { token: string } | { refused: "pending" | "penalty"; retryAfter: number };

/**
 * How long past the CONNECT timeout a slot is kept when nobody releases it (the object holding
 * the socket was evicted or crashed): the timeout closes the socket and releases the slot, so
 * this only bounds what a holder that died can keep.
 */
export const ADMISSION_MARGIN_MS = 5_000;

/**
 * One shard of the broker's admission control (docs/security.md, "Limits"): connections
 * upgraded but not yet authenticated, and failed-authentication penalties per client address.
 * The Worker asks `admit` on every MQTT upgrade of an address that hashes here; the object that
 * holds the socket `release`s the slot once CONNECT is accepted or refused or the socket closes
 * first; a failed authentication from an address is reported with `failed`.
 *
 * In memory only, no storage: a restart forgets the counts, which errs on allowing, and a slot
 * expires on its own at the CONNECT timeout plus a margin, so a holder that dies leaks nothing.
 */
export class AdmissionDO extends DurableObject<Env> {
  /** Live slots by token, oldest first: every slot has the same lifetime, so also by expiry. */
  readonly #pending = new Map<string, number>();
  readonly #penalties: FailurePenalties;
  readonly #capacity: number;
  readonly #ttlMs: number;
  readonly #meter: Meter;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.#meter = new Meter(ctx, env, "admission");
    const shards = Math.max(1, Math.floor(numberVar(env, "ADMISSION_SHARDS", 4)));
    const max = numberVar(env, "MAX_PENDING_CONNECTIONS", 1000);
    // 0: no bound on pending connections (the failure penalties still apply).
    this.#capacity = max > 0 ? Math.max(1, Math.ceil(max / shards)) : Infinity;
    this.#ttlMs = connectTimeoutMsFromEnv(env) + ADMISSION_MARGIN_MS;
    this.#penalties = new FailurePenalties({
      baseMs: numberVar(env, "AUTH_FAIL_DELAY", 1) * 1000,
      maxMs: numberVar(env, "AUTH_FAIL_DELAY_MAX", 60) * 1000,
    });
  }

  /**
   * A slot for a new connection from `address` ("" when the request named none: no penalty
   * applies), unless the address is in a failure penalty (429) or this shard already holds its
   * share of MAX_PENDING_CONNECTIONS (503). `now`: for tests; the object's clock otherwise.
   */
  admit(address: string, now = Date.now()): AdmitResult {
    this.#meter.count("requests");
    const wait = address === "" ? 0 : this.#penalties.waitMs(address, now);
    if (wait > 0) return { refused: "penalty", retryAfter: Math.ceil(wait / 1000) };
    this.#expire(now);
    if (this.#pending.size >= this.#capacity) {
      // The oldest slot is freed at the latest when it expires; most are released far sooner.
      const oldest = this.#pending.values().next().value ?? now + this.#ttlMs;
      return { refused: "pending", retryAfter: Math.max(1, Math.ceil((oldest - now) / 1000)) };
    }
    const token = crypto.randomUUID();
    this.#pending.set(token, now + this.#ttlMs);
    return { token };
  }

  /** Frees a slot (its CONNECT was answered or its socket closed); unknown tokens are ignored. */
  release(token: string): void {
    this.#meter.count("requests");
    this.#pending.delete(token);
  }

  /** A failed authentication from `address`: its next upgrades wait (AUTH_FAIL_DELAY, doubling). */
  failed(address: string, now = Date.now()): void {
    this.#meter.count("requests");
    if (address !== "") this.#penalties.failed(address, now);
  }

  /** Live slots and penalised addresses (tests, diagnostics). */
  status(now = Date.now()): { pending: number; capacity: number; penalties: number } {
    this.#expire(now);
    return { pending: this.#pending.size, capacity: this.#capacity, penalties: this.#penalties.size };
  }

  #expire(now: number): void {
    for (const [token, expiresAt] of this.#pending) {
      if (expiresAt > now) break;
      this.#pending.delete(token);
    }
  }
}
