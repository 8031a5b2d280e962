/**
 * Delivery to shared subscriptions, MQTT 5.0 section 4.8.2: each message published to a
 * topic matching `$share/{group}/{filter}` goes to exactly one session of that shared
 * subscription. A shared subscription is identified by its full filter: `$share/g/a/+` and
 * `$share/g/a/#` are two subscriptions even though they share the ShareName `g`.
 *
 * Members are taken round robin in key order. The state kept per shared subscription is the
 * key that received its last message, not an index: a member joining or leaving does not
 * make the rotation skip or repeat anyone else. The state is plain data (`toJSON`) so a
 * shard can persist it and resume the same rotation after hibernation or restart.
 */

import { isSharedFilter } from "./match";
import type { SubscriptionMatch } from "./trie";

/** Persisted form: full shared filter -> key that received the last message. */
export type SharedGroupsState = Record<string, string>;

export class SharedGroups {
  readonly #last = new Map<string, string>();

  constructor(state?: SharedGroupsState) {
    if (state) for (const [filter, key] of Object.entries(state)) this.#last.set(filter, key);
  }

  /**
   * Reduces the matches of one message to its deliveries: every non-shared match is kept,
   * in order; for every shared subscription among them exactly one member is chosen (then
   * the chosen ones follow, in order of first appearance). `eligible` may exclude members
   * (for example sessions without send quota); if it excludes all of a group, the rotation
   * continues over all members, so each message still goes to exactly one.
   */
  pick<T>(
    matches: readonly SubscriptionMatch<T>[],
    eligible?: (match: SubscriptionMatch<T>) => boolean,
  ): SubscriptionMatch<T>[] {
    const out: SubscriptionMatch<T>[] = [];
    let groups: Map<string, SubscriptionMatch<T>[]> | undefined;
    for (const m of matches) {
      if (!isSharedFilter(m.filter)) {
        out.push(m);
        continue;
      }
      groups ??= new Map();
      const members = groups.get(m.filter);
      if (members) members.push(m);
      else groups.set(m.filter, [m]);
    }
    if (!groups) return out;
    for (const [filter, members] of groups) {
      const last = this.#last.get(filter);
      const chosen =
        (eligible && successor(members.filter(eligible), last)) || successor(members, last)!;
      this.#last.set(filter, chosen.key);
      out.push(chosen);
    }
    return out;
  }

  /** Drops the rotation state of a shared subscription (call when its last member leaves). */
  forget(filter: string): void {
    this.#last.delete(filter);
  }

  /** Number of shared subscriptions with rotation state. */
  get size(): number {
    return this.#last.size;
  }

  toJSON(): SharedGroupsState {
    return Object.fromEntries(this.#last);
  }
}

/** The member with the smallest key greater than `last`, wrapping to the smallest key. */
function successor<T>(
  members: readonly SubscriptionMatch<T>[],
  last: string | undefined,
): SubscriptionMatch<T> | undefined {
  let next: SubscriptionMatch<T> | undefined;
  let first: SubscriptionMatch<T> | undefined;
  for (const m of members) {
    if (!first || m.key < first.key) first = m;
    if (last !== undefined && m.key > last && (!next || m.key < next.key)) next = m;
  }
  return next ?? first;
}
