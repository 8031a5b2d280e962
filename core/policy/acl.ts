/**
 * Access control lists in the manner of Mosquitto's `acl_file` (`user`, `topic`, `pattern`
 * lines), decided in memory from a snapshot of the rules (the objects load them from D1 and
 * build a new `AclPolicy` when they change; docs/security.md).
 *
 * A rule applies to a principal when its user name is null or the principal's, and its client
 * identifier null or the principal's; `%c` and `%u` in its topic stand for the client
 * identifier and the user name (a rule using `%u` applies to no principal without a user
 * name). Among the rules that apply and match, any DENY denies; else any ALLOW allows; else
 * the default: allow while anonymous access is on (so a deny rule can still close a topic),
 * deny once it is off.
 *
 * Above the rules: no principal publishes to a topic starting with `$` (those are the
 * broker's, [MQTT-4.7.2-1] keeps them apart); `$SYS/...` is read and subscribed by admin
 * principals only. A token's `acl` claim (Principal.claims) restricts its principal to
 * those filters for that action: outside them denied whatever the rules say, inside them
 * allowed where no rule decides.
 */
import { validateTopicFilter } from "../mqtt/codec";
import { checkTopicFilterLimits, filterCovers, filtersOverlap, levelsMatch, parseSharedFilter } from "../topics";
import type { AclRule, Authorizer, Principal } from "./types";

/** Which rules govern a check: `publish` for PUBLISH, Will and ingest; `subscribe` for SUBSCRIBE and delivery. */
type Side = "publish" | "subscribe";

interface Rule {
  /** What a check decided by this rule answers (explain*: the rule as given). */
  decision: AclDecision;
  username: string | null;
  clientId: string | null;
  topic: string;
  allow: boolean;
  /** Uses `%u`: applies to no principal without a user name. */
  usesUsername: boolean;
}

/** The rules of one side, grouped so that a check reads only those that can apply. */
interface SideIndex {
  /** No user name and no client identifier: rules for everyone. */
  everyone: Rule[];
  /** By user name (a client identifier, if set, checked on use). */
  byUser: Map<string, Rule[]>;
  /** No user name, by client identifier. */
  byClient: Map<string, Rule[]>;
}

/** A filter as written (for cover and overlap) and split into levels (for matching topics). */
interface Filter {
  text: string;
  levels: string[];
  /** The rule's decision (undefined for a token's claim filter). */
  decision?: AclDecision;
}

/** The filters that apply to one principal on one side, placeholders substituted. */
interface Applicable {
  deny: Filter[];
  allow: Filter[];
}

/**
 * Why a check was answered as it was (explain*, the admin API's "test a topic"): `rule` (the
 * deciding rule in `rule`), `default` (no rule matched: ALLOW_ANONYMOUS), `dollar-topic`
 * (nobody publishes to `$` topics), `sys-admin-only` / `sys-admin` (`$SYS` denied to a
 * non-admin / allowed to an admin), `claims` (outside a token's `acl` claim: denied; inside
 * it where no rule decides: allowed).
 */
export type AclReason = "rule" | "default" | "dollar-topic" | "sys-admin-only" | "sys-admin" | "claims";

export interface AclDecision {
  readonly allowed: boolean;
  readonly reason: AclReason;
  /** The deciding rule when `reason` is `rule`, else null. */
  readonly rule: Readonly<AclRule> | null;
}

const decision = (allowed: boolean, reason: AclReason): AclDecision => Object.freeze({ allowed, reason, rule: null });
const DOLLAR_TOPIC = decision(false, "dollar-topic");
const SYS_DENIED = decision(false, "sys-admin-only");
const SYS_ALLOWED = decision(true, "sys-admin");
const OUTSIDE_CLAIMS = decision(false, "claims");
const INSIDE_CLAIMS = decision(true, "claims");
const DEFAULT_ALLOW = decision(true, "default");
const DEFAULT_DENY = decision(false, "default");

/** Principals whose applicable rules are kept: the sessions of one object, the keys of an isolate. */
const CACHE_ENTRIES = 4096;

export interface AclOptions {
  /** ALLOW_ANONYMOUS: the default where no rule decides (allow when true, deny when false). */
  allowAnonymous: boolean;
}

export class AclPolicy implements Authorizer {
  readonly #publish: SideIndex = newIndex();
  readonly #subscribe: SideIndex = newIndex();
  readonly #default: AclDecision;
  /**
   * By principal object (a session keeps its own; principals are never modified), then by who
   * it is (a new object each CONNECT or use of a key).
   */
  readonly #byPrincipal = new WeakMap<Principal, Partial<Record<Side, Applicable>>>();
  readonly #cache = new Map<string, Applicable>();
  readonly #claims = new WeakMap<string[], Map<string, Filter[]>>();

  constructor(rules: readonly AclRule[], options: AclOptions) {
    this.#default = options.allowAnonymous ? DEFAULT_ALLOW : DEFAULT_DENY;
    for (const r of rules) {
      const source = Object.freeze({ id: r.id, username: r.username, clientId: r.clientId, topic: r.topic, action: r.action, allow: r.allow });
      const rule: Rule = {
        decision: Object.freeze({ allowed: r.allow, reason: "rule", rule: source }),
        username: r.username,
        clientId: r.clientId,
        topic: r.topic,
        allow: r.allow,
        usesUsername: r.topic.includes("%u"),
      };
      if (r.action !== "subscribe") add(this.#publish, rule);
      if (r.action !== "publish") add(this.#subscribe, rule);
    }
  }

  /** A PUBLISH, a Will or an HTTP ingest item from `principal` to the topic name `topic`. */
  authorizePublish(principal: Principal, topic: string): boolean {
    return this.explainPublish(principal, topic).allowed;
  }

  /**
   * A SUBSCRIBE to `filter` (a `$share/<group>/` prefix is checked as its inner filter). An
   * ALLOW rule decides when it covers the filter (matches every topic the filter can); a DENY
   * rule already when it overlaps it (matches some topic the filter can).
   */
  authorizeSubscribe(principal: Principal, filter: string): boolean {
    return this.explainSubscribe(principal, filter).allowed;
  }

  /** A message on `topic` may be delivered to `principal`: live and retained messages alike. */
  authorizeRead(principal: Principal, topic: string): boolean {
    return this.explainRead(principal, topic).allowed;
  }

  /** authorizePublish's answer with its reason and deciding rule (the same decision: authorizePublish reads it). */
  explainPublish(principal: Principal, topic: string): AclDecision {
    if (topic.startsWith("$")) return DOLLAR_TOPIC; // `$` topics are the broker's: nobody publishes there
    return this.#decideTopic(principal, "publish", topic.split("/"));
  }

  /** authorizeSubscribe's answer with its reason and deciding rule. */
  explainSubscribe(principal: Principal, filter: string): AclDecision {
    const inner = parseSharedFilter(filter)?.filter ?? filter;
    const claims = this.#claimFilters(principal, "subscribe");
    if (claims && !claims.some((f) => filterCovers(f.text, inner))) return OUTSIDE_CLAIMS;
    if (isSys(inner)) return principal.admin === true ? SYS_ALLOWED : SYS_DENIED;
    const rules = this.#applicable(principal, "subscribe");
    for (const f of rules.deny) if (filtersOverlap(f.text, inner)) return f.decision!;
    for (const f of rules.allow) if (filterCovers(f.text, inner)) return f.decision!;
    return claims !== undefined ? INSIDE_CLAIMS : this.#default;
  }

  /** authorizeRead's answer with its reason and deciding rule. */
  explainRead(principal: Principal, topic: string): AclDecision {
    if (isSys(topic)) {
      if (principal.admin !== true) return SYS_DENIED;
      const claims = this.#claimFilters(principal, "subscribe");
      const levels = topic.split("/");
      return !claims || claims.some((f) => levelsMatch(f.levels, levels)) ? SYS_ALLOWED : OUTSIDE_CLAIMS;
    }
    return this.#decideTopic(principal, "subscribe", topic.split("/"));
  }

  /** A topic name against the rules of a side and the token's claims: deny, claims, allow, default. */
  #decideTopic(principal: Principal, side: Side, levels: string[]): AclDecision {
    const rules = this.#applicable(principal, side);
    for (const f of rules.deny) if (levelsMatch(f.levels, levels)) return f.decision!;
    const claims = this.#claimFilters(principal, side);
    if (claims && !claims.some((f) => levelsMatch(f.levels, levels))) return OUTSIDE_CLAIMS;
    for (const f of rules.allow) if (levelsMatch(f.levels, levels)) return f.decision!;
    return claims !== undefined ? INSIDE_CLAIMS : this.#default;
  }

  /** The filters of the rules that apply to a principal on a side, computed once per principal. */
  #applicable(principal: Principal, side: Side): Applicable {
    let mine = this.#byPrincipal.get(principal);
    if (!mine) this.#byPrincipal.set(principal, (mine = {}));
    return (mine[side] ??= this.#lookup(principal, side));
  }

  #lookup(principal: Principal, side: Side): Applicable {
    const { clientId, username } = principal;
    const key = `${side}\u0000${username === undefined ? "-" : `+${username}`}\u0000${clientId}`;
    const cached = this.#cache.get(key);
    if (cached) return cached;
    const index = side === "publish" ? this.#publish : this.#subscribe;
    const out: Applicable = { deny: [], allow: [] };
    const consider = (rule: Rule): void => {
      if (rule.clientId !== null && rule.clientId !== clientId) return;
      if (rule.usesUsername && username === undefined) return;
      const filter = rule.allow ? allowFilter(rule.topic, clientId, username) : denyFilter(rule.topic, clientId, username);
      if (filter !== undefined) (rule.allow ? out.allow : out.deny).push({ ...split(filter), decision: rule.decision });
    };
    index.everyone.forEach(consider);
    if (username !== undefined) index.byUser.get(username)?.forEach(consider);
    index.byClient.get(clientId)?.forEach(consider);
    if (this.#cache.size >= CACHE_ENTRIES) this.#cache.clear();
    this.#cache.set(key, out);
    return out;
  }

  /** A token's filters for a side (placeholders substituted), or undefined when it sets none. */
  #claimFilters(principal: Principal, side: Side): Filter[] | undefined {
    const filters = principal.claims?.[side];
    if (!filters) return undefined;
    let bySubject = this.#claims.get(filters);
    if (!bySubject) this.#claims.set(filters, (bySubject = new Map()));
    const key = `${principal.username ?? ""}\u0000${principal.clientId}`;
    let out = bySubject.get(key);
    if (!out) {
      out = [];
      for (const f of filters) {
        if (f.includes("%u") && principal.username === undefined) continue;
        const filter = allowFilter(f, principal.clientId, principal.username);
        if (filter !== undefined) out.push(split(filter));
      }
      bySubject.set(key, out);
    }
    return out;
  }
}

function split(text: string): Filter {
  return { text, levels: text.split("/") };
}

function newIndex(): SideIndex {
  return { everyone: [], byUser: new Map(), byClient: new Map() };
}

function add(index: SideIndex, rule: Rule): void {
  if (rule.username !== null) push(index.byUser, rule.username, rule);
  else if (rule.clientId !== null) push(index.byClient, rule.clientId, rule);
  else index.everyone.push(rule);
}

function push(map: Map<string, Rule[]>, key: string, rule: Rule): void {
  const list = map.get(key);
  if (list) list.push(rule);
  else map.set(key, [rule]);
}

/** `$SYS` or below it: read by admins only. */
function isSys(topic: string): boolean {
  return topic === "$SYS" || topic.startsWith("$SYS/");
}

/**
 * An ALLOW filter with `%c` / `%u` substituted; undefined when a value would change what the
 * filter means (a `+`, `#` or `/` in it, as Mosquitto refuses "dangerous" identifiers, or
 * an empty one): a client named `+` must not be allowed `devices/+/#`.
 */
function allowFilter(topic: string, clientId: string, username: string | undefined): string | undefined {
  let out = topic;
  if (out.includes("%c")) {
    if (!literalLevel(clientId)) return undefined;
    out = out.replaceAll("%c", clientId);
  }
  if (out.includes("%u")) {
    if (username === undefined || !literalLevel(username)) return undefined;
    out = out.replaceAll("%u", username);
  }
  return out;
}

/**
 * A DENY filter with `%c` / `%u` substituted. A value with a wildcard would make the filter
 * invalid or narrow; it is widened instead: cut at the first level holding that placeholder
 * and ended with `#`, which matches whatever the substitution could.
 */
function denyFilter(topic: string, clientId: string, username: string | undefined): string {
  const risky = (topic.includes("%c") && hasWildcard(clientId)) || (topic.includes("%u") && hasWildcard(username ?? ""));
  if (risky) {
    const levels = topic.split("/");
    const cut = levels.findIndex((l) => l.includes("%c") || l.includes("%u"));
    return [...levels.slice(0, cut), "#"].join("/");
  }
  return topic.replaceAll("%c", clientId).replaceAll("%u", username ?? "");
}

function literalLevel(value: string): boolean {
  return value !== "" && !value.includes("/") && !hasWildcard(value);
}

function hasWildcard(value: string): boolean {
  return value.includes("+") || value.includes("#");
}

/**
 * Why an ACL rule is invalid, for the admin API (undefined when it is valid): its topic must
 * be a topic filter once `%c` and `%u` stand for one level each, not a shared one (a
 * `$share/<group>/` subscription is checked as its inner filter); a user name or client
 * identifier, when given, must not be empty.
 */
export function aclRuleProblem(rule: {
  topic: string;
  action: string;
  username?: string | null;
  clientId?: string | null;
}): string | undefined {
  if (rule.action !== "publish" && rule.action !== "subscribe" && rule.action !== "all") {
    return `action must be "publish", "subscribe" or "all", not "${rule.action}"`;
  }
  if (rule.username === "") return "username must not be empty (leave it out for a rule for every user)";
  if (rule.clientId === "") return "clientid must not be empty (leave it out for a rule for every client)";
  const topic = rule.topic;
  if (topic === "") return "topic must not be empty";
  if (parseSharedFilter(topic) !== undefined || topic.startsWith("$share/")) {
    return "topic must not be a shared subscription: a $share/<group>/<filter> subscription is checked as <filter>";
  }
  const sample = topic.replaceAll("%c", "c").replaceAll("%u", "u");
  if (validateTopicFilter(sample) !== undefined) {
    return `topic "${topic}" is not a valid topic filter ("+" and "#" occupy a whole level, "#" only the last; no U+0000)`;
  }
  if (checkTopicFilterLimits(sample) !== undefined) return "topic is longer than a topic filter may be (65,535 bytes)";
  return undefined;
}

/** The same check over a token's filters (its `acl` claim). */
export function topicFilterProblem(filter: string): string | undefined {
  return aclRuleProblem({ topic: filter, action: "all" });
}
