import { DurableObject } from "cloudflare:workers";
import {
  SharedGroups,
  SubscriptionTrie,
  isSharedFilter,
  retainedLookup,
  topicMatches,
  type SubscriptionMatch,
} from "../core/topics";
import type { Delivery, Message, SubscribeRequest, Subscription } from "../core/session/types";
import type { QoS } from "../core/mqtt/packets";
import type { Env } from "../worker/env";
import { Batcher } from "../core/util/batcher";
import { deliverySize } from "../core/session/outbound";
import { RPC_CALL_BYTES } from "./config";
import { Meter } from "./metrics";
import { decodeJson, encodeJson } from "./storage/json";

const DESTINATION_CACHE_SIZE = 10_000;
/** Rounds of re-picking a shared subscription member after the picked one turned out gone. */
const MAX_SHARED_RETRIES = 4;

const SCHEMA = [
  `CREATE TABLE IF NOT EXISTS subscriptions (filter TEXT NOT NULL, client_id TEXT NOT NULL, options TEXT NOT NULL, PRIMARY KEY (filter, client_id))`,
  `CREATE TABLE IF NOT EXISTS retained (topic TEXT PRIMARY KEY, message TEXT NOT NULL, expires_at INTEGER, updated_at INTEGER NOT NULL)`,
];

// `topic` is the PRIMARY KEY (BINARY collation: UTF-8 byte order, the order of retainedLookup's ranges).
const SELECT_RETAINED = `SELECT topic, message, expires_at FROM retained`;

interface RetainedRow {
  topic: string;
  message: string;
  expires_at: number | null;
}

/**
 * One shard of the topic space: the retained messages of its topics and the subscriptions
 * that can match them (exact filters hashed here, every wildcard filter). Fans a message
 * out with one call per destination session.
 */
export class TopicShardDO extends DurableObject<Env> {
  #trie: SubscriptionTrie<Subscription> | undefined;
  readonly #shared = new SharedGroups();
  readonly #destinations = new Map<string, Batcher<Delivery, boolean>>();

  readonly #meter: Meter;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.#meter = new Meter(ctx, env, "shard");
    for (const statement of SCHEMA) this.#exec(statement);
  }

  #exec(query: string, ...bindings: unknown[]): void {
    this.#meter.sql.exec(query, ...bindings);
  }

  #rows<T>(query: string, ...bindings: unknown[]): T[] {
    return this.#meter.sql.exec(query, ...bindings).toArray() as T[];
  }

  get #subscriptions(): SubscriptionTrie<Subscription> {
    if (!this.#trie) {
      const trie = new SubscriptionTrie<Subscription>();
      for (const row of this.#rows<{ filter: string; client_id: string; options: string }>(
        `SELECT filter, client_id, options FROM subscriptions`,
      )) {
        trie.add(row.filter, row.client_id, decodeJson<Subscription>(row.options));
      }
      this.#trie = trie;
    }
    return this.#trie;
  }

  async subscribe(clientId: string, requests: SubscribeRequest[]): Promise<Delivery[]> {
    this.#meter.count("requests");
    const trie = this.#subscriptions;
    const retained: Delivery[] = [];
    const now = Date.now();
    for (const { subscription, wantRetained } of requests) {
      trie.add(subscription.filter, clientId, subscription);
      this.#exec(
        `INSERT OR REPLACE INTO subscriptions (filter, client_id, options) VALUES (?, ?, ?)`,
        subscription.filter,
        clientId,
        encodeJson(subscription),
      );
      if (wantRetained) retained.push(...this.#retainedFor(subscription, now));
    }
    return this.#retainedAnswer(clientId, retained);
  }

  /**
   * What one call may return is limited (32 MiB): the first RPC_CALL_BYTES of the retained
   * messages go back with the answer, the rest through the session's delivery queue, in calls
   * of the same size. They may reach the client before the SUBACK, which the specification
   * allows (3.8.4); retained messages of different topics have no order between them.
   */
  #retainedAnswer(clientId: string, retained: Delivery[]): Delivery[] {
    let bytes = 0;
    const answer: Delivery[] = [];
    for (const delivery of retained) {
      bytes += deliverySize(delivery);
      if (answer.length === 0 || bytes <= RPC_CALL_BYTES) answer.push(delivery);
      else this.#destination(clientId).push(delivery).catch((e: unknown) => console.error("retained delivery failed", e));
    }
    return answer;
  }

  async unsubscribe(clientId: string, filters: string[]): Promise<void> {
    this.#meter.count("requests");
    const trie = this.#subscriptions;
    for (const filter of filters) {
      trie.remove(filter, clientId);
      this.#exec(`DELETE FROM subscriptions WHERE filter = ? AND client_id = ?`, filter, clientId);
    }
  }

  /** Store (if retained) and fan out one message; resolves once every matching session accepted it. */
  /** Store (if retained) and fan out one message; resolves once every matching session accepted it. */
  async publish(message: Message): Promise<{ matched: number }> {
    this.#meter.count("requests");
    return this.#publish(message);
  }

  /** Several messages from one session, in order: one call for what it sent while the previous call was in flight. */
  async publishBatch(messages: Message[]): Promise<{ matched: number }[]> {
    this.#meter.count("requests");
    // Started in order, so each message's deliveries queue in order behind the previous one's.
    return Promise.all(messages.map((m) => this.#publish(m)));
  }

  async #publish(message: Message): Promise<{ matched: number }> {
    const now = Date.now();
    if (message.retain) this.#retain(message, now);
    let matches = this.#subscriptions.match(message.topic);
    let matched = 0;
    // A shared subscription's message goes to exactly one member. If the member picked has no
    // session any more, it is forgotten and the message goes to another member of that group.
    for (let round = 0; round < MAX_SHARED_RETRIES && matches.length > 0; round++) {
      const picked = this.#shared.pick(matches);
      const dead = new Set<string>();
      const results = await Promise.allSettled(
        [...this.#deliveries(message, picked)].map(async ([clientId, delivery]) => {
          const live = await this.#destination(clientId).push(delivery);
          if (!live) {
            this.#forget(clientId);
            dead.add(clientId);
          }
          return live;
        }),
      );
      for (const r of results) {
        if (r.status === "fulfilled") {
          if (r.value) matched++;
        } else {
          console.error("delivery failed", r.reason);
          if (message.qos > 0) throw new Error("a subscriber's session did not accept the message");
        }
      }
      const retry = new Set(picked.filter((m) => dead.has(m.key) && isSharedFilter(m.filter)).map((m) => m.filter));
      matches = retry.size === 0 ? [] : this.#subscriptions.match(message.topic).filter((m) => retry.has(m.filter));
    }
    return { matched };
  }

  /** Retained message store: replaced by the next retained publish, deleted by an empty one [MQTT-3.3.1-5] [MQTT-3.3.1-6]. */
  #retain(message: Message, now: number): void {
    if (message.payload.byteLength === 0) {
      this.#exec(`DELETE FROM retained WHERE topic = ?`, message.topic);
      return;
    }
    // Without the QoS 2 message identifier: a retained replay is a new delivery each time, and
    // a session that took the live message in must not drop it as a copy.
    const { messageId: _live, ...stored } = message;
    this.#exec(
      `INSERT OR REPLACE INTO retained (topic, message, expires_at, updated_at) VALUES (?, ?, ?, ?)`,
      message.topic,
      encodeJson(stored),
      message.expiresAt ?? null,
      now,
    );
  }

  #retainedFor(subscription: Subscription, now: number): Delivery[] {
    const out: Delivery[] = [];
    for (const row of this.#retainedRows(subscription.filter)) {
      if (row.expires_at !== null && row.expires_at <= now) {
        // Expired retained messages are not sent and are removed [MQTT-3.3.2-5].
        this.#exec(`DELETE FROM retained WHERE topic = ?`, row.topic);
        continue;
      }
      if (!topicMatches(subscription.filter, row.topic)) continue;
      const message = decodeJson<Message>(row.message);
      out.push({
        message,
        qos: minQos(message.qos, subscription.qos),
        retain: true, // sent because of a new subscription: RETAIN set [MQTT-3.3.1-8]
        ...(subscription.subscriptionId !== undefined && { subscriptionIds: [subscription.subscriptionId] }),
      });
    }
    return out;
  }

  /**
   * The retained rows a filter can match, read through the primary key index on `topic`: an
   * exact lookup and/or range scans over the names under the filter's literal levels, so a
   * SUBSCRIBE reads rows in proportion to what it can match, not to everything stored.
   */
  *#retainedRows(filter: string): Generator<RetainedRow> {
    const { exact, ranges } = retainedLookup(filter);
    if (exact !== undefined) yield* this.#rows<RetainedRow>(`${SELECT_RETAINED} WHERE topic = ?`, exact);
    for (const { low, high } of ranges) {
      yield* high === undefined
        ? this.#rows<RetainedRow>(`${SELECT_RETAINED} WHERE topic >= ?`, low)
        : this.#rows<RetainedRow>(`${SELECT_RETAINED} WHERE topic >= ? AND topic < ?`, low, high);
    }
  }

  /** One delivery per session, whatever the number of its matching subscriptions (5.0 3.3.4). */
  #deliveries(message: Message, matches: SubscriptionMatch<Subscription>[]): Map<string, Delivery> {
    const perClient = new Map<string, Delivery>();
    for (const m of matches) {
      const sub = m.value;
      // No Local: not back to the publisher's own non-shared subscriptions [MQTT-3.8.3-3].
      if (sub.noLocal && message.origin === m.key && !isSharedFilter(m.filter)) continue;
      const qos = minQos(message.qos, sub.qos);
      // Retain As Published keeps RETAIN, otherwise it is cleared on forwarding [MQTT-3.3.1-12] [MQTT-3.3.1-13].
      const retain = sub.retainAsPublished && message.retain;
      const existing = perClient.get(m.key);
      if (!existing) {
        perClient.set(m.key, {
          message,
          qos,
          retain,
          ...(sub.subscriptionId !== undefined && { subscriptionIds: [sub.subscriptionId] }),
        });
        continue;
      }
      // Overlapping subscriptions: highest QoS, every subscription identifier [MQTT-3.3.4-3] [MQTT-3.3.4-5].
      existing.qos = Math.max(existing.qos, qos) as QoS;
      existing.retain = existing.retain || retain;
      if (sub.subscriptionId !== undefined) (existing.subscriptionIds ??= []).push(sub.subscriptionId);
    }
    return perClient;
  }

  /**
   * The delivery queue of one session: one deliver() call in flight, the deliveries that
   * arrive meanwhile go together in the next (so a busy subscriber costs far less than one
   * call per message), in publish order.
   */
  #destination(clientId: string): Batcher<Delivery, boolean> {
    let batcher = this.#destinations.get(clientId);
    if (batcher) {
      this.#destinations.delete(clientId); // keep the map in least-recently-used order
    } else {
      const stub = this.env.SESSIONS.get(this.env.SESSIONS.idFromName(clientId));
      batcher = new Batcher(
        async (deliveries: Delivery[]) => {
          const { live } = await stub.deliver(deliveries);
          return deliveries.map(() => live);
        },
        512,
        deliverySize,
        RPC_CALL_BYTES,
      );
      this.#evictIdleDestinations();
    }
    this.#destinations.set(clientId, batcher);
    return batcher;
  }

  #evictIdleDestinations(): void {
    if (this.#destinations.size < DESTINATION_CACHE_SIZE) return;
    for (const [clientId, batcher] of this.#destinations) {
      if (!batcher.idle) continue; // a busy queue keeps its order: never dropped
      this.#destinations.delete(clientId);
      if (this.#destinations.size < DESTINATION_CACHE_SIZE) return;
    }
  }

  #forget(clientId: string): void {
    this.#subscriptions.removeAll(clientId);
    this.#exec(`DELETE FROM subscriptions WHERE client_id = ?`, clientId);
  }
}

function minQos(a: QoS, b: QoS): QoS {
  return (a < b ? a : b) as QoS;
}
