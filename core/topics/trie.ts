/**
 * SubscriptionTrie: the subscription index of a topic shard, keyed by topic filter.
 *
 * One node per filter level; `+` and `#` are ordinary child names. Matching a topic walks
 * at most three children per level (the exact level, `+`, `#`), so its cost follows the
 * topic's depth and the matching part of the index, not the number of subscriptions.
 *
 * A shared subscription `$share/{group}/{filter}` is stored on the node of its inner filter
 * but keeps its full filter as its identity: `match` reports it under the full filter, and
 * {@link SharedGroups} (shared.ts) then picks one member per group.
 */

import { isSharedFilter, parseSharedFilter } from "./match";

export interface SubscriptionMatch<T> {
  /** The filter as subscribed, including any `$share/{group}/` prefix. */
  filter: string;
  /** Who subscribed, typically the client identifier. */
  key: string;
  value: T;
}

interface Node<T> {
  children: Map<string, Node<T>> | undefined;
  /** Full filter (one plain, plus any shared ones on the same inner filter) -> key -> value. */
  subs: Map<string, Map<string, T>> | undefined;
}

function newNode<T>(): Node<T> {
  return { children: undefined, subs: undefined };
}

function hasWildcard(filter: string): boolean {
  return filter.includes("+") || filter.includes("#");
}

export class SubscriptionTrie<T> {
  readonly #root: Node<T> = newNode();
  /** key -> filters it holds, so `removeAll` does not scan the trie. */
  readonly #byKey = new Map<string, Set<string>>();
  #size = 0;
  #wildcardSize = 0;

  /** Number of (filter, key) subscriptions held. */
  get size(): number {
    return this.#size;
  }

  /** How many of them have a wildcard filter (`+` or `#`, shared ones included). */
  get wildcardSize(): number {
    return this.#wildcardSize;
  }

  /**
   * Adds the subscription of `key` to `filter`, or replaces its value when it exists: one
   * subscription per client per filter [MQTT-3.8.4-3]. Returns true when it is new (MQTT 5
   * Retain Handling 1 sends retained messages only for new subscriptions).
   * Throws RangeError for a malformed `$share/` filter; validate first.
   */
  add(filter: string, key: string, value: T): boolean {
    let node = this.#root;
    for (const level of pathOf(filter, true)!) {
      node.children ??= new Map();
      let next = node.children.get(level);
      if (!next) {
        next = newNode();
        node.children.set(level, next);
      }
      node = next;
    }
    node.subs ??= new Map();
    let byKey = node.subs.get(filter);
    if (!byKey) {
      byKey = new Map();
      node.subs.set(filter, byKey);
    }
    const created = !byKey.has(key);
    byKey.set(key, value);
    if (created) {
      this.#size++;
      if (hasWildcard(filter)) this.#wildcardSize++;
      let filters = this.#byKey.get(key);
      if (!filters) {
        filters = new Set();
        this.#byKey.set(key, filters);
      }
      filters.add(filter);
    }
    return created;
  }

  /** The value stored for (filter, key), if any. */
  get(filter: string, key: string): T | undefined {
    return this.#find(filter)?.subs?.get(filter)?.get(key);
  }

  /** Number of keys subscribed to exactly this filter (for a shared filter: its group size). */
  subscriberCount(filter: string): number {
    return this.#find(filter)?.subs?.get(filter)?.size ?? 0;
  }

  /** Removes the subscription of `key` to `filter`; false when there was none. */
  remove(filter: string, key: string): boolean {
    const path = pathOf(filter, false);
    if (!path) return false;
    const nodes: Node<T>[] = [this.#root];
    let node = this.#root;
    for (const level of path) {
      const next = node.children?.get(level);
      if (!next) return false;
      nodes.push(next);
      node = next;
    }
    const byKey = node.subs?.get(filter);
    if (!byKey || !byKey.delete(key)) return false;
    if (byKey.size === 0) {
      node.subs!.delete(filter);
      if (node.subs!.size === 0) node.subs = undefined;
    }
    this.#size--;
    if (hasWildcard(filter)) this.#wildcardSize--;
    const filters = this.#byKey.get(key)!;
    filters.delete(filter);
    if (filters.size === 0) this.#byKey.delete(key);
    // Prune the now-empty tail of the path so the trie does not grow without bound.
    for (let i = path.length; i > 0; i--) {
      const n = nodes[i]!;
      if (n.subs || n.children) break;
      const parent = nodes[i - 1]!;
      parent.children!.delete(path[i - 1]!);
      if (parent.children!.size === 0) parent.children = undefined;
    }
    return true;
  }

  /** Removes every subscription of `key`; returns how many there were. */
  removeAll(key: string): number {
    const filters = this.#byKey.get(key);
    if (!filters) return 0;
    let count = 0;
    for (const filter of [...filters]) if (this.remove(filter, key)) count++;
    return count;
  }

  /** The filters `key` is subscribed to. */
  filtersOf(key: string): string[] {
    return [...(this.#byKey.get(key) ?? [])];
  }

  /**
   * Every subscription whose filter matches the topic name (shared ones by their inner
   * filter), each (filter, key) once. Filters starting with `+` or `#` do not match topics
   * starting with `$` [MQTT-4.7.2-1]. The topic is assumed valid (no wildcards).
   */
  match(topic: string): SubscriptionMatch<T>[] {
    const out: SubscriptionMatch<T>[] = [];
    const levels = topic.split("/");
    const dollar = topic.startsWith("$");
    // Explicit stack: topics may be deeper than the call stack.
    const nodes: Node<T>[] = [this.#root];
    const depths: number[] = [0];
    while (nodes.length > 0) {
      const node = nodes.pop()!;
      const i = depths.pop()!;
      const children = node.children;
      if (i === levels.length) {
        emit(node, out);
        // [MQTT-4.7.1-2] `#` also matches the parent level: `sport/#` matches `sport`.
        const hash = children?.get("#");
        if (hash) emit(hash, out);
        continue;
      }
      if (!children) continue;
      // [MQTT-4.7.2-1] no leading wildcard for `$` topics.
      if (i > 0 || !dollar) {
        const hash = children.get("#");
        if (hash) emit(hash, out);
        const plus = children.get("+");
        if (plus) {
          nodes.push(plus);
          depths.push(i + 1);
        }
      }
      // [MQTT-4.7.3-4] exact comparison, no normalisation. A wildcard in a topic name is
      // invalid [MQTT-4.7.1-1]; skipping it keeps each subscription reported at most once.
      const level = levels[i]!;
      const exact = level === "+" || level === "#" ? undefined : children.get(level);
      if (exact) {
        nodes.push(exact);
        depths.push(i + 1);
      }
    }
    return out;
  }

  /** Every subscription, for persistence and inspection. Order is unspecified. */
  *entries(): IterableIterator<SubscriptionMatch<T>> {
    const stack: Node<T>[] = [this.#root];
    while (stack.length > 0) {
      const node = stack.pop()!;
      if (node.subs) {
        for (const [filter, byKey] of node.subs) {
          for (const [key, value] of byKey) yield { filter, key, value };
        }
      }
      if (node.children) for (const child of node.children.values()) stack.push(child);
    }
  }

  #find(filter: string): Node<T> | undefined {
    const path = pathOf(filter, false);
    if (!path) return undefined;
    let node: Node<T> | undefined = this.#root;
    for (const level of path) {
      node = node.children?.get(level);
      if (!node) return undefined;
    }
    return node;
  }
}

/** The trie path of a filter: its inner filter's levels for a shared subscription. */
function pathOf(filter: string, strict: boolean): string[] | undefined {
  if (!isSharedFilter(filter)) return filter.split("/");
  const shared = parseSharedFilter(filter);
  if (shared) return shared.filter.split("/");
  if (strict) throw new RangeError(`malformed shared subscription filter: ${filter}`);
  return undefined;
}

function emit<T>(node: Node<T>, out: SubscriptionMatch<T>[]): void {
  if (!node.subs) return;
  for (const [filter, byKey] of node.subs) {
    for (const [key, value] of byKey) out.push({ filter, key, value });
  }
}
