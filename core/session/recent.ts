/**
 * The messages a topic shard routed lately, kept in memory so that a subscription takes
 * effect for every message that reached the broker after its SUBSCRIBE did, as on a
 * one-threaded broker (docs/architecture.md, "Subscribe, then publish: the ordering window").
 *
 * A SUBSCRIBE travels from the subscriber's session to the shards while another client's
 * PUBLISH, taken in a moment later, may reach the shard first and find no subscriber. The
 * shard therefore keeps each routed message with the time the publisher's session received
 * it and who it went to; when the subscription arrives, carrying the time its SUBSCRIBE was
 * received, the shard replays the messages received at or after that time that this
 * session did not get. Nothing is written or called per message: one entry in memory.
 */
import { isSharedFilter, subscriptionMatches, type SubscriptionMatch } from "../topics";
import { deliveriesFor, excludedByNoLocal } from "./fanout";
import { messageSize } from "./outbound";
import type { Delivery, Message, Subscription } from "./types";

export interface RecentLimits {
  /** How long an entry is kept after the shard routed it, in ms. */
  maxAgeMs: number;
  maxEntries: number;
  /** Payload and topic bytes of the entries, plus a fixed weight per entry and per recipient. */
  maxBytes: number;
  /**
   * A message of another client, not retained, received up to this many ms before the
   * SUBSCRIBE still counts as after it: the order in which the runtime hands two clients'
   * packets to their objects, and the clocks of two objects, are only that precise (see
   * RECENT_LIMITS). Retained messages are exact: what came before the SUBSCRIBE is the
   * retained answer's to send (or, with Retain Handling 2 and for a shared subscription, not
   * to send). So are the subscriber's own messages: one session, one clock, one order. Nor
   * does it reach back before the subscriber's connection began: a message received before
   * then was not concurrent with its SUBSCRIBE (a client that connects after a publisher's
   * PUBACK and subscribes does not get that message).
   */
  toleranceMs: number;
}

/**
 * 5 s: the window to close is the time a SUBSCRIBE takes from its session to the shard (a
 * few ms; seconds only when an object is cold or the runtime is overloaded), plus the clock
 * skew between the two objects. 2,000 entries and 2 MiB bound the memory per shard: at the
 * benchmark's 1,000 msg/s per shard the count bound keeps 2 s, still far above the window.
 * 100 ms tolerance: on this machine under load, paho wrote B's SUBSCRIBE before A's PUBLISH
 * and workerd handed the PUBLISH to A's object 5 ms and 41 ms before the SUBSCRIBE to B's, and
 * MQTT.js writing both in one tick saw 1 to 6 of 20 rounds inverted by a millisecond or more;
 * with production objects on different machines, clock skew adds to it. A message that close
 * to the SUBSCRIBE was concurrent with it: delivering it is as right as not (never twice).
 */
export const RECENT_LIMITS: RecentLimits = { maxAgeMs: 5_000, maxEntries: 2_000, maxBytes: 2 * 1024 * 1024, toleranceMs: 100 };

/** What an entry weighs beyond its topic and payload, and each recipient reference it holds. */
const ENTRY_OVERHEAD = 64;
const RECIPIENT_WEIGHT = 48;

type Match = SubscriptionMatch<Subscription>;

/** One routed message. */
export interface RecentEntry {
  readonly message: Message;
  /** When the publisher's session received the PUBLISH (epoch ms, its clock). */
  readonly receivedAt: number;
  /** When the shard routed it (its clock): the age bound counts from here. */
  readonly routedAt: number;
  /** The matches it was delivered through, one list per routing round (shared retries add one). */
  readonly rounds: Match[][];
  /** Sessions, and shared subscriptions (by full filter), it was replayed to. */
  replayedTo: Set<string> | undefined;
  weight: number;
}

/** A message to replay to a session, with the entry it comes from. */
export interface Replay {
  entry: RecentEntry;
  delivery: Delivery;
}

export class RecentMessages {
  readonly #limits: RecentLimits;
  /** Oldest first; entries before #head are gone (compacted now and then). */
  #entries: RecentEntry[] = [];
  #head = 0;
  #bytes = 0;
  /** The latest retained publish of each topic still in the ring: the topic's current retained message. */
  readonly #retained = new Map<string, RecentEntry>();

  constructor(limits: RecentLimits = RECENT_LIMITS) {
    this.#limits = limits;
  }

  get size(): number {
    return this.#entries.length - this.#head;
  }

  get bytes(): number {
    return this.#bytes;
  }

  /**
   * A message the shard routes now, to `picked` (the matches of its first round). Entries
   * are kept in the order the shard routed them, which is per-topic publish order.
   */
  record(message: Message, receivedAt: number, routedAt: number, picked: Match[]): RecentEntry {
    const entry: RecentEntry = {
      message,
      receivedAt,
      routedAt,
      rounds: [picked],
      replayedTo: undefined,
      weight: messageSize(message) + ENTRY_OVERHEAD + RECIPIENT_WEIGHT * picked.length,
    };
    this.#entries.push(entry);
    this.#bytes += entry.weight;
    if (message.retain) {
      // An empty retained payload deletes the topic's retained message [MQTT-3.3.1-6].
      if (message.payload.byteLength === 0) this.#retained.delete(message.topic);
      else this.#retained.set(message.topic, entry);
    }
    this.trim(routedAt);
    return entry;
  }

  /** Another routing round of an entry (a shared subscription's member was gone: another one got it). */
  delivered(entry: RecentEntry, picked: Match[]): void {
    entry.rounds.push(picked);
    const more = RECIPIENT_WEIGHT * picked.length;
    entry.weight += more;
    if (this.#entries.includes(entry)) this.#bytes += more; // still held (not trimmed meanwhile)
  }

  /** Whether `entry` is the current retained message of its topic (its latest retained publish). */
  isCurrentRetained(entry: RecentEntry): boolean {
    return this.#retained.get(entry.message.topic) === entry;
  }

  /** Drops entries past the age, count and byte bounds, oldest first. */
  trim(now: number): void {
    const { maxAgeMs, maxEntries, maxBytes } = this.#limits;
    while (this.size > 0) {
      const oldest = this.#entries[this.#head]!;
      if (oldest.routedAt > now - maxAgeMs && this.size <= maxEntries && this.#bytes <= maxBytes) break;
      this.#entries[this.#head] = undefined as unknown as RecentEntry; // let it be collected
      this.#head++;
      this.#bytes -= oldest.weight;
      if (this.#retained.get(oldest.message.topic) === oldest) this.#retained.delete(oldest.message.topic);
    }
    if (this.#head > 1024 && this.#head * 2 > this.#entries.length) {
      this.#entries = this.#entries.slice(this.#head);
      this.#head = 0;
    }
  }

  /**
   * The session `clientId` has just added `added` (now in the shard's index, which
   * `matchesOf` reads), from a SUBSCRIBE its session received at `since`. Returns, in the
   * order they were routed, the messages to send it: those received by their publisher at or
   * after `since` (less the tolerance, for other clients' messages not retained, but not before
   * `connectedAt`, when the subscriber's connection began), matching one of the new filters, that the session did not get (through
   * another subscription, or an earlier replay). Each one is built as a live delivery would be
   * from the session's current subscriptions: QoS, subscription identifiers, No Local,
   * Retain As Published. A shared subscription gets a message only if no member of the group
   * got it (the group had no member when it was routed): a group's message goes to one
   * member (5.0 4.8.2); the entry then records the group, so a second new member does not
   * get it again.
   */
  replay(
    clientId: string,
    since: number,
    added: readonly Subscription[],
    matchesOf: (topic: string) => Match[],
    now: number,
    connectedAt = Number.NEGATIVE_INFINITY,
  ): Replay[] {
    this.trim(now);
    const out: Replay[] = [];
    if (added.length === 0) return out;
    const addedFilters = new Set(added.map((s) => s.filter));
    const loose = Math.min(since, Math.max(since - this.#limits.toleranceMs, connectedAt));
    for (let i = this.#head; i < this.#entries.length; i++) {
      const entry = this.#entries[i]!;
      const exact = entry.message.retain || entry.message.origin === clientId;
      if (entry.receivedAt < (exact ? since : loose)) continue;
      const topic = entry.message.topic;
      if (!added.some((s) => subscriptionMatches(s.filter, topic))) continue;
      if (gotIt(entry, clientId)) continue;
      const mine = matchesOf(topic).filter((m) => m.key === clientId && !(isSharedFilter(m.filter) && groupGotIt(entry, m.filter)));
      if (!mine.some((m) => addedFilters.has(m.filter) && !excludedByNoLocal(entry.message, m))) continue;
      const delivery = deliveriesFor(entry.message, mine).get(clientId);
      if (!delivery) continue;
      entry.replayedTo ??= new Set();
      entry.replayedTo.add(clientId);
      for (const m of mine) if (isSharedFilter(m.filter)) entry.replayedTo.add(m.filter);
      out.push({ entry, delivery });
    }
    return out;
  }
}

/** Whether the session got the message when it was routed, or by an earlier replay. */
function gotIt(entry: RecentEntry, clientId: string): boolean {
  if (entry.replayedTo?.has(clientId)) return true;
  return entry.rounds.some((round) => round.some((m) => m.key === clientId && !excludedByNoLocal(entry.message, m)));
}

/** Whether a member of the shared subscription `filter` got the message. */
function groupGotIt(entry: RecentEntry, filter: string): boolean {
  if (entry.replayedTo?.has(filter)) return true;
  return entry.rounds.some((round) => round.some((m) => m.filter === filter));
}

/**
 * Where the messages for a new subscription go: `retained`, what the SUBSCRIBE's answer
 * would carry, and `replays`. The replays go through the session's delivery queue (the one
 * live messages take, so they come before any message routed after the subscription); a
 * retained message of a topic that also has replays goes in that queue too, so the topic's
 * messages stay in publish order: at the place of its own publish when that publish is
 * replayed (the replay is then sent once, as retained [MQTT-3.3.1-8], not twice), otherwise
 * before the topic's first replay (it was published before them). The other retained
 * messages stay in the answer.
 */
export function arrangeReplay(
  retained: readonly Delivery[],
  replays: readonly Replay[],
  isCurrentRetained: (entry: RecentEntry) => boolean,
): { answer: Delivery[]; queued: Delivery[] } {
  if (replays.length === 0) return { answer: [...retained], queued: [] };
  const replayTopics = new Set(replays.map((r) => r.entry.message.topic));
  const answer: Delivery[] = [];
  const moved = new Map<string, Delivery[]>();
  for (const d of retained) {
    const topic = d.message.topic;
    if (!replayTopics.has(topic)) answer.push(d);
    else {
      let list = moved.get(topic);
      if (!list) moved.set(topic, (list = []));
      list.push(d);
    }
  }
  // Topics whose current retained message is itself among the replays: it goes at that place.
  const inPlace = new Set(replays.filter((r) => r.entry.message.retain && isCurrentRetained(r.entry)).map((r) => r.entry.message.topic));
  const queued: Delivery[] = [];
  const started = new Set<string>();
  for (const { entry, delivery } of replays) {
    const topic = entry.message.topic;
    const retainedHere = moved.get(topic);
    if (retainedHere && inPlace.has(topic)) {
      if (entry.message.retain && isCurrentRetained(entry)) {
        queued.push(...retainedHere); // what the answer would have sent, at its publish's place
        continue;
      }
    } else if (retainedHere && !started.has(topic)) {
      queued.push(...retainedHere);
    }
    started.add(topic);
    queued.push(delivery);
  }
  return { answer, queued };
}
