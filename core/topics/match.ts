/**
 * Topic matching, MQTT 5.0 section 4.7 (identical in 3.1.1), and the `$share/` prefix of
 * shared subscriptions (MQTT 5.0 section 4.8.2).
 *
 * Inputs are assumed syntactically valid (core/mqtt/codec/topic-syntax.ts checks that);
 * on invalid input these functions stay total and never throw.
 */

const SHARE_PREFIX = "$share/";

/**
 * Whether `filter` matches the topic name `topic`, per section 4.7.
 *
 * Levels are the strings between `/` separators, compared exactly: an empty level is a real
 * level (`/a` has the levels "" and "a"), and no normalisation is done [MQTT-4.7.3-4].
 * `+` matches exactly one level (which may be empty); `#` matches its own level's parent
 * and any number of levels below (`sport/#` matches `sport`) and is only meaningful as
 * the last level [MQTT-4.7.1-2]: a `#` anywhere else matches nothing.
 *
 * The filter is taken literally: a `$share/{group}/` prefix is not stripped here; see
 * {@link subscriptionMatches}.
 */
export function topicMatches(filter: string, topic: string): boolean {
  return levelsMatch(filter.split("/"), topic.split("/"));
}

/**
 * {@link topicMatches} over filter and topic already split into levels, for callers that
 * check one topic against many filters (access control) and split each once.
 */
export function levelsMatch(f: readonly string[], t: readonly string[]): boolean {
  // [MQTT-4.7.2-1] Filters starting with a wildcard never match topics starting with `$`.
  if (t[0]!.startsWith("$") && (f[0] === "+" || f[0] === "#")) return false;
  for (let i = 0; i < f.length; i++) {
    const level = f[i];
    // [MQTT-4.7.1-2] `#` is the last level and matches the parent and everything below.
    if (level === "#") return i === f.length - 1;
    if (i >= t.length) return false;
    if (level !== "+" && level !== t[i]) return false; // [MQTT-4.7.3-4] exact comparison
  }
  return f.length === t.length;
}

/**
 * Like {@link topicMatches}, but a shared subscription `$share/{group}/{filter}` matches
 * as its inner filter (section 4.8.2). This is what the broker's subscription index does.
 */
export function subscriptionMatches(filter: string, topic: string): boolean {
  const shared = parseSharedFilter(filter);
  return topicMatches(shared ? shared.filter : filter, topic);
}

/** Whether the filter claims to be a shared subscription (starts with `$share/`). */
export function isSharedFilter(filter: string): boolean {
  return filter.startsWith(SHARE_PREFIX);
}

/**
 * Splits `$share/{group}/{filter}` into its ShareName and inner Topic Filter.
 *
 * Returns undefined when the filter is not shared, and also when it starts with `$share/`
 * but is malformed: the ShareName must be at least one character [MQTT-4.8.2-1], contain
 * none of `/`, `+`, `#` and be followed by `/` and a non-empty Topic Filter [MQTT-4.8.2-2].
 * Use {@link isSharedFilter} to tell the two cases apart (a malformed shared filter is a
 * Topic Filter invalid, 0x8F).
 */
export function parseSharedFilter(filter: string): { group: string; filter: string } | undefined {
  if (!filter.startsWith(SHARE_PREFIX)) return undefined;
  const slash = filter.indexOf("/", SHARE_PREFIX.length);
  if (slash < 0) return undefined; // [MQTT-4.8.2-2] ShareName must be followed by "/"
  const group = filter.slice(SHARE_PREFIX.length, slash);
  if (group.length === 0) return undefined; // [MQTT-4.8.2-1]
  if (group.includes("+") || group.includes("#")) return undefined; // [MQTT-4.8.2-2]
  const inner = filter.slice(slash + 1);
  if (inner.length === 0) return undefined; // [MQTT-4.8.2-2] followed by a Topic Filter
  return { group, filter: inner };
}
