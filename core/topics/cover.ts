/**
 * Relations between two topic filters (MQTT 5.0 section 4.7, identical in 3.1.1), for access
 * control: whether one filter matches every topic another can match (`filterCovers`), and
 * whether some topic matches both (`filtersOverlap`). A topic name is a filter without
 * wildcards, so both also answer for a name.
 *
 * Inputs are assumed syntactically valid and not shared (`$share/{group}/` already removed);
 * on invalid input these stay total and never throw. The rule that filters starting with a
 * wildcard match no topic starting with `$` [MQTT-4.7.2-1] is applied, as `topicMatches` does.
 */

/**
 * Whether every topic matched by `inner` is matched by `outer`.
 *
 * `a/#` covers `a`, `a/b/+` and `a/#`; `a/+` covers `a/b` and `a/+` but not `a/#` (which
 * matches `a` and `a/b/c`); `#` does not cover `$SYS/#` [MQTT-4.7.2-1].
 */
export function filterCovers(outer: string, inner: string): boolean {
  const o = outer.split("/");
  const n = inner.split("/");
  if (startsWithWildcard(o[0]!) && isDollarLiteral(n[0]!)) return false; // [MQTT-4.7.2-1]
  for (let i = 0; i < o.length; i++) {
    const a = o[i]!;
    // `#` matches its parent level and everything below [MQTT-4.7.1-2], whatever `inner` has there.
    if (a === "#") return i === o.length - 1;
    const b = n[i];
    // `inner` matching any number of levels from here: only `+/#` at the top matches them all too
    // (there, "any number" is at least one, a topic having one level at least).
    if (b === "#") return i === 0 && a === "+" && o.length === 2 && o[1] === "#";
    if (b === undefined) return false; // `inner` matches a shorter topic than `outer` can
    if (a === "+") continue; // one level, whatever it is (`+` included)
    if (a !== b) return false; // a literal level covers only itself [MQTT-4.7.3-4]
  }
  return o.length === n.length;
}

/**
 * Whether some topic is matched by both filters: `a/+` and `+/b` overlap (`a/b`), `a/#` and
 * `a` overlap, `a/+` and `a/b/c` do not, `#` and `$SYS/x` do not [MQTT-4.7.2-1].
 */
export function filtersOverlap(first: string, second: string): boolean {
  const f = first.split("/");
  const s = second.split("/");
  if (startsWithWildcard(f[0]!) && isDollarLiteral(s[0]!)) return false; // [MQTT-4.7.2-1]
  if (startsWithWildcard(s[0]!) && isDollarLiteral(f[0]!)) return false;
  for (let i = 0; ; i++) {
    const a = f[i];
    const b = s[i];
    if (a === "#" || b === "#") return true; // zero or more levels: whatever the other has left
    if (a === undefined || b === undefined) return a === b;
    if (a !== "+" && b !== "+" && a !== b) return false;
  }
}

function startsWithWildcard(level: string): boolean {
  return level === "+" || level === "#";
}

/** A first level that only a literal `$...` topic can have. */
function isDollarLiteral(level: string): boolean {
  return level.startsWith("$");
}
