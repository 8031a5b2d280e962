import { DurableObject } from "cloudflare:workers";
import { SharedGroups, SubscriptionTrie, isSharedFilter, topicMatches } from "../core/topics";
import type { Delivery, Message, SubscribeRequest, Subscription } from "../core/session/types";
import { deliveriesFor, minQos } from "../core/session/fanout";
import { RecentMessages, arrangeReplay } from "../core/session/recent";
import type { Env } from "../worker/env";
import { Batcher } from "../core/util/batcher";
import { deliverySize } from "../core/session/outbound";
import { RPC_CALL_BYTES, numberVar, shardName } from "./config";
import { Meter } from "./metrics";
import { closeCodeToEcho, safeClose } from "./socket";
import { LINK_HEADER, Links, acceptLink, answerLinkCall, isLinkSocket, linkOptionsFromEnv, linkRequest, type LinkHandlers } from "./link";
import { decodeJson, encodeJson } from "./storage/json";
import { CLEAR_WALK_ROWS, RetainedStore, type ClearResult, type ListPage, type RetainedInfo, type RetainedSelection } from "./storage/retained-store";

const DESTINATION_CACHE_SIZE = 10_000;
/** Rounds of re-picking a shared subscription member after the picked one turned out gone. */
const MAX_SHARED_RETRIES = 4;

const SCHEMA = [
  `CREATE TABLE IF NOT EXISTS subscriptions (filter TEXT NOT NULL, client_id TEXT NOT NULL, options TEXT NOT NULL, PRIMARY KEY (filter, client_id))`,
];

/**
 * One shard of the topic space: the retained messages of its topics and the subscriptions
 * that can match them (exact filters hashed here, every wildcard filter). Fans a message
 * out with one call per destination session.
 */
export class TopicShardDO extends DurableObject<Env> {
  #trie: SubscriptionTrie<Subscription> | undefined;
  readonly #shared = new SharedGroups();
  readonly #destinations = new Map<string, Batcher<Delivery, boolean>>();
  /** Deliveries through a shared subscription: their session's answer decides whether another member gets the message. */
  readonly #sharedDeliveries = new WeakSet<Delivery>();
  /** Messages routed lately, replayed to a subscription whose SUBSCRIBE came before them (core/session/recent.ts). */
  readonly #recent = new RecentMessages();

  readonly #meter: Meter;
  readonly #retained: RetainedStore;
  /** Links to busy destination sessions; and what this shard answers on the links of its publishers. */
  readonly #links: Links;
  readonly #linkHandlers: LinkHandlers = {
    // A cast batch (QoS 0 only) reports nothing: its publisher needs no count.
    publishBatch: { run: (messages: Message[], receivedAt?: (number | null)[]) => this.#publishBatch(messages, receivedAt) },
  };
  /** The sweep alarm is known to be set (or the sweeper is off): no storage call per retained publish. */
  #sweepChecked = false;
  /** Where a sweep cut short by SWEEP_ROWS goes on (in memory: after an eviction it starts over). */
  #sweepAfter: string | undefined;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.#meter = new Meter(ctx, env, "shard");
    this.#links = new Links(linkOptionsFromEnv(env), () => this.#meter.count("webSocketMessages"));
    for (const statement of SCHEMA) this.#exec(statement);
    this.#retained = new RetainedStore(this.#meter.sql);
    this.#retainedChanged();
  }

  /** The shard's name ("shard-3"), the label of its gauges. */
  get #label(): string {
    return this.ctx.id.name ?? this.ctx.id.toString();
  }

  /** Reports the retained count gauge, and arms the stale sweep when there is something to sweep. */
  #retainedChanged(): void {
    this.#meter.gauge("retained", this.#retained.count, this.#label);
    if (!this.#sweepChecked && this.#retained.count > 0) this.#armSweep();
  }

  /**
   * Subscriptions counted once across shards: a wildcard filter is held by every shard
   * (shardsForFilter), so only the first shard counts those; exact filters live on one shard.
   */
  #subscriptionsChanged(): void {
    if (!this.#trie) return;
    const firstShard = this.ctx.id.name === undefined || this.ctx.id.name === shardName(0);
    const counted = firstShard ? this.#trie.size : this.#trie.size - this.#trie.wildcardSize;
    this.#meter.gauge("subscriptions", counted, this.#label);
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
      this.#subscriptionsChanged();
    }
    return this.#trie;
  }

  /**
   * Adds a session's subscriptions; resolves with the retained messages to send. `receivedAt`:
   * when its session received the SUBSCRIBE (epoch ms), `connectedAt` when its connection began.
   * The messages this shard routed meanwhile (received by their publisher at or after that
   * time) that the session did not get are replayed to it through its delivery queue, in the
   * order they were routed, before anything routed after this call (core/session/recent.ts;
   * docs/architecture.md, "Subscribe, then publish").
   */
  async subscribe(clientId: string, requests: SubscribeRequest[], receivedAt?: number, connectedAt?: number): Promise<Delivery[]> {
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
    this.#subscriptionsChanged();
    if (receivedAt === undefined) return this.#retainedAnswer(clientId, retained);
    const added = requests.map((r) => r.subscription);
    const replays = this.#recent.replay(clientId, receivedAt, added, (topic) => trie.match(topic), now, connectedAt);
    const { answer, queued } = arrangeReplay(retained, replays, (entry) => this.#recent.isCurrentRetained(entry));
    if (queued.length > 0) {
      // The live path's queue: before any message routed after this turn, in routed order.
      const destination = this.#destination(clientId);
      for (const delivery of queued) destination.push(delivery).catch((e: unknown) => console.error("replay failed", e));
    }
    return this.#retainedAnswer(clientId, answer);
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
    this.#subscriptionsChanged();
  }

  // ------------------------------------------------------------------ links (link.ts)

  /** A session's link upgrade; nothing else comes here by fetch. */
  override async fetch(request: Request): Promise<Response> {
    this.#meter.count("requests");
    if (request.headers.get(LINK_HEADER) === null || request.headers.get("Upgrade")?.toLowerCase() !== "websocket") {
      return new Response("not found", { status: 404 });
    }
    return acceptLink(this.ctx);
  }

  override webSocketMessage(ws: WebSocket, message: ArrayBuffer | string): void {
    this.#meter.count("webSocketMessages");
    if (isLinkSocket(this.ctx, ws)) answerLinkCall(ws, message, this.#linkHandlers);
    else ws.close(1008, "not a link");
  }

  override webSocketClose(ws: WebSocket, code: number): void {
    safeClose(ws, closeCodeToEcho(code)); // a session closed its link: complete the closing handshake
  }

  /** Store (if retained) and fan out one message; resolves once every matching session accepted it. */
  async publish(message: Message, receivedAt?: number): Promise<{ matched: number }> {
    this.#meter.count("requests");
    return this.#publish(message, receivedAt ?? null);
  }

  /**
   * Several messages from one session, in order: one call for what it sent while the previous
   * call was in flight. `receivedAt[i]`: when the publisher's session received message i
   * (null: unknown, e.g. HTTP ingest; the shard's own time is used).
   */
  async publishBatch(messages: Message[], receivedAt?: (number | null)[]): Promise<{ matched: number }[]> {
    this.#meter.count("requests");
    return this.#publishBatch(messages, receivedAt);
  }

  #publishBatch(messages: Message[], receivedAt?: (number | null)[]): Promise<{ matched: number }[]> {
    // Started in order, so each message's deliveries queue in order behind the previous one's.
    return Promise.all(messages.map((m, i) => this.#publish(m, receivedAt?.[i] ?? null)));
  }

  async #publish(message: Message, receivedAt: number | null): Promise<{ matched: number }> {
    const now = Date.now();
    if (message.retain) this.#retain(message, now);
    let matches = this.#subscriptions.match(message.topic);
    let picked = matches.length > 0 ? this.#shared.pick(matches) : [];
    // Kept a few seconds for a SUBSCRIBE still on its way here (recent.ts), with who got it.
    const recent = this.#recent.record(message, receivedAt ?? now, now, picked);
    let matched = 0;
    // A shared subscription's message goes to exactly one member. If the member picked has no
    // session any more, it is forgotten and the message goes to another member of that group.
    for (let round = 0; round < MAX_SHARED_RETRIES && picked.length > 0; round++) {
      if (round > 0) this.#recent.delivered(recent, picked);
      const dead = new Set<string>();
      let shared: Set<string> | undefined; // sessions picked through a shared subscription
      for (const m of picked) if (isSharedFilter(m.filter)) (shared ??= new Set()).add(m.key);
      const results = await Promise.allSettled(
        [...deliveriesFor(message, picked)].map(async ([clientId, delivery]) => {
          if (shared?.has(clientId)) this.#sharedDeliveries.add(delivery);
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
      picked = matches.length > 0 ? this.#shared.pick(matches) : [];
    }
    return { matched };
  }

  /** Retained message store: replaced by the next retained publish, deleted by an empty one [MQTT-3.3.1-5] [MQTT-3.3.1-6]. */
  #retain(message: Message, now: number): void {
    if (message.payload.byteLength === 0) this.#retained.delete(message.topic);
    else this.#retained.put(message, now);
    this.#retainedChanged();
  }

  #retainedFor(subscription: Subscription, now: number): Delivery[] {
    const out: Delivery[] = [];
    // The rows the filter can match, through the topic index: read in proportion to what it can match.
    for (const row of this.#retained.candidates(subscription.filter)) {
      if (row.expires_at !== null && row.expires_at <= now) {
        // Expired retained messages are not sent and are removed [MQTT-3.3.2-5].
        this.#retained.delete(row.topic);
        this.#retainedChanged();
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

  // ------------------------------------------------------------------ retained admin (retained-admin.ts)

  /** A page of this shard's retained messages matching a filter, in topic order (see RetainedStore.list). */
  async retainedList(selection: RetainedSelection, limit: number): Promise<ListPage> {
    this.#meter.count("requests");
    const page = this.#retained.list(selection, limit, Date.now());
    this.#retainedChanged();
    return page;
  }

  /** One topic's retained message, or null. */
  async retainedGet(topic: string): Promise<RetainedInfo | null> {
    this.#meter.count("requests");
    const found = this.#retained.get(topic, Date.now());
    this.#retainedChanged();
    return found ?? null;
  }

  /** Deletes one topic's retained message; whether there was one (not expired). */
  async retainedDelete(topic: string): Promise<boolean> {
    this.#meter.count("requests");
    const live = this.#retained.deleteLive(topic, Date.now());
    this.#retainedChanged();
    return live;
  }

  /** Deletes (or counts, `dryRun`) a bounded part of the selection; call again from `last` until `done`. */
  async retainedClear(selection: RetainedSelection, dryRun: boolean): Promise<ClearResult> {
    this.#meter.count("requests");
    const result = this.#retained.clear(selection, dryRun, Date.now());
    this.#retainedChanged();
    return result;
  }

  /** Retained messages stored on this shard (kept in memory, no row read). */
  async retainedCount(): Promise<number> {
    this.#meter.count("requests");
    this.#retainedChanged();
    return this.#retained.count;
  }

  // ------------------------------------------------------------------ stale sweep

  /** Sets the sweep alarm unless one is set; once per object lifetime (then the alarm re-arms itself). */
  #armSweep(): void {
    const interval = sweepIntervalMs(this.env);
    this.#sweepChecked = true;
    if (interval === undefined) return;
    void this.ctx.storage
      .getAlarm()
      .then((at) => (at === null ? this.ctx.storage.setAlarm(Date.now() + interval) : undefined))
      .catch((e: unknown) => {
        this.#sweepChecked = false;
        console.error("retained sweep: could not set the alarm", e);
      });
  }

  /**
   * The stale sweep (RETAINED_MAX_AGE > 0): every RETAINED_SWEEP_INTERVAL seconds, count the
   * retained messages stored more than RETAINED_MAX_AGE seconds ago (logged: the dry run),
   * then clear them, at most SWEEP_ROWS per alarm (what is left: another alarm a second later).
   * With nothing retained any more the alarm stops; the next retained message re-arms it.
   */
  override async alarm(): Promise<void> {
    this.#meter.count("requests");
    this.#meter.count("alarms");
    const interval = sweepIntervalMs(this.env);
    const maxAge = numberVar(this.env, "RETAINED_MAX_AGE", 0);
    if (interval === undefined) {
      this.#sweepChecked = false;
      return;
    }
    const now = Date.now();
    // `#`: every topic but the `$` ones [MQTT-4.7.2-1], which the broker keeps up itself ($SYS
    // statistics, the retained alert): a sweep must not erase a standing alert.
    const selection: RetainedSelection = { filter: "#", cutoff: now - maxAge * 1000 };
    // One slice of at most SWEEP_ROWS rows per alarm, from where the previous slice stopped: the
    // dry run, then the clear over the same rows (the same walk, in the same turn).
    const from = this.#sweepAfter;
    const found = this.#sweep(selection, from, true, now);
    if (found.matched > 0) {
      const swept = this.#sweep(selection, from, false, now);
      console.log(`retained sweep ${this.#label}: ${found.matched} message(s) older than ${maxAge} s found, ${swept.cleared} cleared`);
    }
    this.#sweepAfter = found.done ? undefined : found.last;
    this.#retainedChanged();
    if (this.#retained.count === 0) {
      this.#sweepChecked = false; // the next retained message re-arms it
      return;
    }
    await this.ctx.storage.setAlarm(Date.now() + (found.done ? interval : 1000));
  }

  /** Runs clear() from after `from` until done or SWEEP_ROWS rows walked. */
  #sweep(selection: RetainedSelection, from: string | undefined, dryRun: boolean, now: number): { matched: number; cleared: number; last: string | undefined; done: boolean } {
    let matched = 0;
    let cleared = 0;
    let after = from;
    for (let walked = 0; walked < SWEEP_ROWS; walked += CLEAR_WALK_ROWS) {
      const r = this.#retained.clear({ ...selection, after }, dryRun, now);
      matched += r.matched;
      cleared += r.cleared;
      if (r.done) return { matched, cleared, last: r.last, done: true };
      after = r.last;
    }
    return { matched, cleared, last: after, done: false };
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
      // A cast delivery's report: the session is gone (or failed the call), so it is forgotten.
      const link = this.#links.to(
        () => stub.fetch(linkRequest()),
        (_method, value) => {
          if (value instanceof Error) console.error("delivery failed", value);
          else if (!(value as { live: boolean }).live) this.#forget(clientId);
        },
      );
      batcher = new Batcher(
        async (deliveries: Delivery[]) => {
          // One QoS 0 delivery outside shared subscriptions: nothing waits on the answer but the
          // session being gone, which a cast reports (a shared one waits, to pick another
          // member). More than one: deliveries queued behind the last call; a call lets the next batch grow.
          const only = deliveries.length === 1 ? deliveries[0]! : undefined;
          const cast = only && only.qos === 0 && !this.#sharedDeliveries.has(only) ? { assumed: { live: true } } : undefined;
          const { live } = await link.call("deliver", [deliveries], () => stub.deliver(deliveries), cast);
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
    this.#subscriptionsChanged();
  }
}

/** Rows one sweep alarm walks at most (dry run and clear each). */
const SWEEP_ROWS = 100_000;

/** The sweep period in ms, or undefined when the sweeper is off (RETAINED_MAX_AGE or RETAINED_SWEEP_INTERVAL 0). */
function sweepIntervalMs(env: Env): number | undefined {
  const maxAge = numberVar(env, "RETAINED_MAX_AGE", 0);
  const interval = numberVar(env, "RETAINED_SWEEP_INTERVAL", 3600);
  return maxAge > 0 && interval > 0 ? interval * 1000 : undefined;
}
