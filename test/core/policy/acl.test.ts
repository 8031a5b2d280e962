// ACL decisions (core/policy/acl.ts): Mosquitto-like rules with %c / %u, deny before allow,
// the ALLOW_ANONYMOUS default, `$` topics, `$SYS` for admins, shared subscriptions, token claims.
import { describe, expect, it } from "vitest";
import { AclPolicy, aclRuleProblem, type AclAction, type AclRule, type Principal } from "../../../core/policy";

let nextId = 1;
function rule(topic: string, action: AclAction, allow: boolean, who: { username?: string; clientId?: string } = {}): AclRule {
  return { id: nextId++, username: who.username ?? null, clientId: who.clientId ?? null, topic, action, allow };
}
const alice: Principal = { clientId: "alice-phone", username: "alice", method: "password" };
const bob: Principal = { clientId: "bob-1", username: "bob", method: "password" };
const anon: Principal = { clientId: "sensor-9", method: "anonymous" };
const admin: Principal = { clientId: "ops", username: "root", method: "password", admin: true };

const open = (...rules: AclRule[]) => new AclPolicy(rules, { allowAnonymous: true });
const closed = (...rules: AclRule[]) => new AclPolicy(rules, { allowAnonymous: false });

describe("the default where no rule decides", () => {
  it("ALLOW_ANONYMOUS on: allowed (publish, subscribe, read)", () => {
    const p = open();
    expect(p.authorizePublish(anon, "a/b")).toBe(true);
    expect(p.authorizeSubscribe(anon, "#")).toBe(true);
    expect(p.authorizeRead(anon, "a/b")).toBe(true);
  });

  it("ALLOW_ANONYMOUS off: denied, for authenticated principals too", () => {
    const p = closed();
    for (const who of [anon, alice]) {
      expect(p.authorizePublish(who, "a/b")).toBe(false);
      expect(p.authorizeSubscribe(who, "a/b")).toBe(false);
      expect(p.authorizeRead(who, "a/b")).toBe(false);
    }
  });

  it("a rule that does not match leaves the default", () => {
    expect(open(rule("x/#", "all", false)).authorizePublish(alice, "a/b")).toBe(true);
    expect(closed(rule("x/#", "all", true)).authorizePublish(alice, "a/b")).toBe(false);
  });
});

describe("allow and deny", () => {
  it("an ALLOW rule opens a topic when the default denies", () => {
    const p = closed(rule("telemetry/#", "publish", true, { username: "alice" }));
    expect(p.authorizePublish(alice, "telemetry/t1")).toBe(true);
    expect(p.authorizePublish(alice, "telemetry")).toBe(true); // # matches its parent
    expect(p.authorizePublish(alice, "other")).toBe(false);
    expect(p.authorizePublish(bob, "telemetry/t1")).toBe(false); // another user's rule
    expect(p.authorizePublish(anon, "telemetry/t1")).toBe(false);
  });

  it("a DENY rule closes a topic when the default allows", () => {
    const p = open(rule("secret/#", "all", false));
    expect(p.authorizePublish(anon, "secret/x")).toBe(false);
    expect(p.authorizePublish(alice, "secret/x")).toBe(false); // a rule for everyone
    expect(p.authorizeRead(alice, "secret/x")).toBe(false);
    expect(p.authorizePublish(alice, "public/x")).toBe(true);
  });

  it("DENY wins over ALLOW, whatever their order or specificity", () => {
    for (const rules of [
      [rule("a/#", "all", true, { username: "alice" }), rule("a/b", "all", false)],
      [rule("a/b", "all", false), rule("a/#", "all", true, { username: "alice" })],
      [rule("a/b", "all", true, { username: "alice", clientId: "alice-phone" }), rule("a/+", "all", false, { username: "alice" })],
    ]) {
      const p = closed(...rules);
      expect(p.authorizePublish(alice, "a/b")).toBe(false);
      expect(p.authorizeRead(alice, "a/b")).toBe(false);
    }
  });

  it("a rule applies by user name and by client identifier, both when both are set", () => {
    const byClient = closed(rule("x", "publish", true, { clientId: "bob-1" }));
    expect(byClient.authorizePublish(bob, "x")).toBe(true);
    expect(byClient.authorizePublish({ ...bob, clientId: "bob-2" }, "x")).toBe(false);
    expect(byClient.authorizePublish({ clientId: "bob-1", method: "anonymous" }, "x")).toBe(true);
    const both = closed(rule("x", "publish", true, { username: "bob", clientId: "bob-1" }));
    expect(both.authorizePublish(bob, "x")).toBe(true);
    expect(both.authorizePublish({ ...bob, clientId: "bob-2" }, "x")).toBe(false);
    expect(both.authorizePublish({ ...alice, clientId: "bob-1" }, "x")).toBe(false);
  });

  it("publish rules govern publishing only, subscribe rules subscribing and reading, all both", () => {
    const p = closed(rule("p/#", "publish", true), rule("s/#", "subscribe", true), rule("b/#", "all", true));
    expect([p.authorizePublish(anon, "p/1"), p.authorizeSubscribe(anon, "p/1"), p.authorizeRead(anon, "p/1")]).toEqual([true, false, false]);
    expect([p.authorizePublish(anon, "s/1"), p.authorizeSubscribe(anon, "s/1"), p.authorizeRead(anon, "s/1")]).toEqual([false, true, true]);
    expect([p.authorizePublish(anon, "b/1"), p.authorizeSubscribe(anon, "b/1"), p.authorizeRead(anon, "b/1")]).toEqual([true, true, true]);
  });
});

describe("%c and %u", () => {
  const p = closed(rule("devices/%c/#", "all", true), rule("users/%u/#", "all", true));

  it("%c is the client identifier", () => {
    expect(p.authorizePublish(anon, "devices/sensor-9/temp")).toBe(true);
    expect(p.authorizePublish(anon, "devices/sensor-8/temp")).toBe(false);
    expect(p.authorizeSubscribe(anon, "devices/sensor-9/#")).toBe(true);
    expect(p.authorizeSubscribe(anon, "devices/+/#")).toBe(false);
  });

  it("%u is the user name; a %u rule does not apply to a principal without one", () => {
    expect(p.authorizePublish(alice, "users/alice/inbox")).toBe(true);
    expect(p.authorizePublish(alice, "users/bob/inbox")).toBe(false);
    expect(p.authorizePublish(anon, "users//inbox")).toBe(false);
    expect(p.authorizePublish(anon, "users/%u/inbox")).toBe(false);
    // A DENY %u rule does not apply to anonymous clients either: the default decides.
    expect(open(rule("users/%u/#", "all", false)).authorizePublish(anon, "users/x/y")).toBe(true);
  });

  it("a placeholder inside a level, and both in one rule", () => {
    const q = closed(rule("home/%u-%c/set", "publish", true));
    expect(q.authorizePublish(alice, "home/alice-alice-phone/set")).toBe(true);
    expect(q.authorizePublish(alice, "home/alice-other/set")).toBe(false);
  });

  it("an identifier with a wildcard or a / gains nothing through an ALLOW rule", () => {
    for (const clientId of ["+", "#", "a/b", "x+"]) {
      const who: Principal = { clientId, method: "anonymous" };
      expect(p.authorizePublish(who, "devices/z/t")).toBe(false);
      expect(p.authorizeSubscribe(who, "devices/+/#")).toBe(false);
      expect(p.authorizeRead(who, "devices/z/t")).toBe(false);
    }
    expect(p.authorizeSubscribe({ ...alice, username: "#" }, "users/#")).toBe(false);
  });

  it("an identifier with a wildcard is denied at least what a DENY rule could mean for it", () => {
    const q = open(rule("devices/%c/cmd", "all", false));
    const plus: Principal = { clientId: "+", method: "anonymous" };
    expect(q.authorizePublish(plus, "devices/other/cmd")).toBe(false);
    expect(q.authorizePublish(plus, "devices/x/y")).toBe(false); // widened to devices/#
    expect(q.authorizePublish(plus, "elsewhere")).toBe(true);
    expect(q.authorizePublish(anon, "devices/other/cmd")).toBe(true); // a plain identifier: only its own
    expect(q.authorizePublish(anon, "devices/sensor-9/cmd")).toBe(false);
  });
});

describe("$ topics", () => {
  it("nobody publishes to a topic starting with $, whatever the rules", () => {
    const p = open(rule("$SYS/#", "all", true), rule("$app/#", "all", true));
    for (const who of [anon, alice, admin]) {
      expect(p.authorizePublish(who, "$SYS/broker/uptime")).toBe(false);
      expect(p.authorizePublish(who, "$app/x")).toBe(false);
    }
  });

  it("$SYS is read and subscribed by admins only, whatever the rules", () => {
    const p = open(rule("$SYS/#", "all", true));
    expect(p.authorizeSubscribe(alice, "$SYS/#")).toBe(false);
    expect(p.authorizeRead(alice, "$SYS/broker/clients")).toBe(false);
    expect(p.authorizeRead(anon, "$SYS")).toBe(false);
    const q = closed(rule("$SYS/#", "all", false));
    expect(q.authorizeSubscribe(admin, "$SYS/#")).toBe(true);
    expect(q.authorizeRead(admin, "$SYS/broker/clients")).toBe(true);
  });

  it("a wildcard rule does not reach $ topics [MQTT-4.7.2-1]", () => {
    const p = closed(rule("#", "all", true));
    expect(p.authorizeRead(alice, "a/b")).toBe(true);
    expect(p.authorizeRead(alice, "$app/x")).toBe(false);
    expect(p.authorizeSubscribe(alice, "$app/#")).toBe(false);
  });
});

describe("subscribe: covered by an ALLOW, overlapped by a DENY", () => {
  it("an ALLOW rule allows the filters it covers", () => {
    const p = closed(rule("a/+", "subscribe", true));
    expect(p.authorizeSubscribe(alice, "a/b")).toBe(true);
    expect(p.authorizeSubscribe(alice, "a/+")).toBe(true);
    expect(p.authorizeSubscribe(alice, "a/#")).toBe(false); // also matches a and a/b/c
    expect(p.authorizeSubscribe(alice, "#")).toBe(false);
  });

  it("a DENY rule denies a filter it merely overlaps", () => {
    const p = open(rule("a/secret", "subscribe", false));
    expect(p.authorizeSubscribe(alice, "a/public")).toBe(true);
    expect(p.authorizeSubscribe(alice, "a/secret")).toBe(false);
    expect(p.authorizeSubscribe(alice, "a/+")).toBe(false);
    expect(p.authorizeSubscribe(alice, "#")).toBe(false);
    expect(p.authorizeSubscribe(alice, "b/#")).toBe(true);
  });

  it("a shared subscription is checked as its inner filter", () => {
    const p = closed(rule("jobs/#", "subscribe", true), rule("jobs/admin/#", "subscribe", false));
    expect(p.authorizeSubscribe(alice, "$share/workers/jobs/build/+")).toBe(true);
    expect(p.authorizeSubscribe(alice, "$share/workers/jobs/+")).toBe(false); // overlaps the deny (jobs/admin)
    expect(p.authorizeSubscribe(alice, "$share/workers/jobs/#")).toBe(false);
    expect(p.authorizeSubscribe(alice, "$share/workers/other")).toBe(false);
    expect(p.authorizeSubscribe(alice, "$share/g/$SYS/#")).toBe(false);
    expect(p.authorizeSubscribe(admin, "$share/g/$SYS/#")).toBe(true);
  });
});

describe("token claims (the acl claim)", () => {
  const token = (claims: Principal["claims"], extra: Partial<Principal> = {}): Principal => ({
    clientId: "dev-7",
    username: "dev",
    method: "jwt",
    claims,
    ...extra,
  });

  it("restrict publishing to the claimed filters, whatever the rules or the default", () => {
    const who = token({ publish: ["t/%c/#"] });
    const p = open(rule("#", "all", true));
    expect(p.authorizePublish(who, "t/dev-7/x")).toBe(true);
    expect(p.authorizePublish(who, "t/dev-8/x")).toBe(false);
    expect(p.authorizePublish(who, "u/x")).toBe(false);
    expect(p.authorizeSubscribe(who, "u/x")).toBe(true); // no subscribe claim: not restricted
  });

  it("allow within them where no rule decides, the default off", () => {
    const who = token({ publish: ["t/#"], subscribe: ["cmd/%u/+"] });
    const p = closed();
    expect(p.authorizePublish(who, "t/1")).toBe(true);
    expect(p.authorizeSubscribe(who, "cmd/dev/+")).toBe(true);
    expect(p.authorizeSubscribe(who, "cmd/dev/#")).toBe(false); // not covered
    expect(p.authorizeRead(who, "cmd/dev/reboot")).toBe(true);
    expect(p.authorizeRead(who, "cmd/other/reboot")).toBe(false);
  });

  it("a DENY rule still wins inside them", () => {
    const who = token({ publish: ["t/#"] });
    expect(closed(rule("t/locked", "publish", false)).authorizePublish(who, "t/locked")).toBe(false);
  });

  it("an empty claim list allows nothing for that action; $SYS still needs admin", () => {
    const who = token({ publish: [], subscribe: ["$SYS/#"] });
    const p = open();
    expect(p.authorizePublish(who, "a")).toBe(false);
    expect(p.authorizeSubscribe(who, "$SYS/#")).toBe(false);
    expect(p.authorizeSubscribe({ ...who, admin: true }, "$SYS/#")).toBe(true);
    expect(p.authorizeSubscribe({ ...who, admin: true }, "$SYS/x/#")).toBe(true);
    expect(p.authorizeSubscribe(token({ subscribe: ["a/#"] }, { admin: true }), "$SYS/#")).toBe(false);
  });
});

describe("many rules", () => {
  it("1,000 per-user rules and a few for everyone: each principal gets its own", () => {
    const rules: AclRule[] = [];
    for (let i = 0; i < 1000; i++) rules.push(rule(`home/${i}/#`, "all", true, { username: `u${i}` }));
    rules.push(rule("home/+/panic", "publish", false), rule("public/#", "subscribe", true));
    const p = closed(...rules);
    for (const i of [0, 17, 999]) {
      const who: Principal = { clientId: `c${i}`, username: `u${i}`, method: "password" };
      expect(p.authorizePublish(who, `home/${i}/light`)).toBe(true);
      expect(p.authorizePublish(who, `home/${(i + 1) % 1000}/light`)).toBe(false);
      expect(p.authorizePublish(who, `home/${i}/panic`)).toBe(false);
      expect(p.authorizeSubscribe(who, "public/#")).toBe(true);
      // The same decisions from a new principal object (a reconnect): nothing stale.
      expect(p.authorizePublish({ ...who }, `home/${i}/light`)).toBe(true);
    }
    // A principal named like a user but without that user name gets none of its rules.
    expect(p.authorizePublish({ clientId: "u5", method: "anonymous" }, "home/5/x")).toBe(false);
  });
});

describe("aclRuleProblem", () => {
  it("accepts filters, with %c / %u standing for a level", () => {
    for (const topic of ["a/b", "a/+/c", "#", "devices/%c/#", "users/%u/+", "home/%u-%c", "$SYS/#", "50%/x"]) {
      expect(aclRuleProblem({ topic, action: "all" }), topic).toBeUndefined();
    }
    expect(aclRuleProblem({ topic: "a", action: "publish", username: "alice", clientId: null })).toBeUndefined();
  });

  it("refuses what could never be a topic filter, shared filters, empty names, unknown actions", () => {
    expect(aclRuleProblem({ topic: "", action: "all" })).toMatch(/empty/);
    expect(aclRuleProblem({ topic: "a/#/b", action: "all" })).toMatch(/not a valid topic filter/);
    expect(aclRuleProblem({ topic: "a+", action: "all" })).toMatch(/not a valid topic filter/);
    expect(aclRuleProblem({ topic: "%c#", action: "all" })).toMatch(/not a valid topic filter/);
    expect(aclRuleProblem({ topic: "a\u0000b", action: "all" })).toMatch(/not a valid topic filter/);
    expect(aclRuleProblem({ topic: "$share/g/a", action: "subscribe" })).toMatch(/shared/);
    expect(aclRuleProblem({ topic: "x".repeat(70_000), action: "all" })).toMatch(/longer/);
    expect(aclRuleProblem({ topic: "a", action: "read" })).toMatch(/action/);
    expect(aclRuleProblem({ topic: "a", action: "all", username: "" })).toMatch(/username/);
    expect(aclRuleProblem({ topic: "a", action: "all", clientId: "" })).toMatch(/clientid/);
  });
});

describe("explain*: the same decision, with its reason and deciding rule", () => {
  it("names the deciding rule: a deny wins over an allow; no match is the default", () => {
    const allow = rule("a/#", "all", true);
    const deny = rule("a/secret", "publish", false, { username: "alice" });
    const p = closed(allow, deny);
    expect(p.explainPublish(alice, "a/secret")).toEqual({ allowed: false, reason: "rule", rule: deny });
    expect(p.explainPublish(bob, "a/secret")).toEqual({ allowed: true, reason: "rule", rule: allow });
    expect(p.explainPublish(alice, "b")).toEqual({ allowed: false, reason: "default", rule: null });
    expect(open().explainPublish(alice, "b")).toEqual({ allowed: true, reason: "default", rule: null });
    // The deny governs publish only: subscribe is decided by the allow.
    expect(p.explainSubscribe(alice, "a/+")).toEqual({ allowed: true, reason: "rule", rule: allow });
    expect(p.explainRead(alice, "a/secret")).toMatchObject({ allowed: true, reason: "rule", rule: { id: allow.id } });
  });

  it("$ topics and $SYS", () => {
    const p = open(rule("#", "all", true));
    expect(p.explainPublish(admin, "$SYS/x")).toEqual({ allowed: false, reason: "dollar-topic", rule: null });
    expect(p.explainRead(alice, "$SYS/broker/uptime")).toEqual({ allowed: false, reason: "sys-admin-only", rule: null });
    expect(p.explainSubscribe(alice, "$SYS/#")).toEqual({ allowed: false, reason: "sys-admin-only", rule: null });
    expect(p.explainRead(admin, "$SYS/broker/uptime")).toEqual({ allowed: true, reason: "sys-admin", rule: null });
  });

  it("%c / %u rules are reported as written; token claims are the reason outside them", () => {
    const own = rule("devices/%c/#", "publish", true);
    const p = closed(own);
    expect(p.explainPublish(anon, "devices/sensor-9/t")).toEqual({ allowed: true, reason: "rule", rule: own });
    expect(p.explainPublish(anon, "devices/other/t")).toEqual({ allowed: false, reason: "default", rule: null });
    const jwt: Principal = { clientId: "c", username: "j", method: "jwt", claims: { publish: ["x/#"] } };
    expect(p.explainPublish(jwt, "y")).toEqual({ allowed: false, reason: "claims", rule: null });
    expect(p.explainPublish(jwt, "x/1")).toEqual({ allowed: true, reason: "claims", rule: null });
  });

  it("agrees with authorize* on every check", () => {
    const rules = [rule("a/#", "all", true), rule("a/b", "subscribe", false, { clientId: "bob-1" }), rule("u/%u/#", "all", true), rule("$SYS/#", "all", true)];
    const topics = ["a/b", "a/c", "u/alice/x", "u/bob/x", "$SYS/x", "z"];
    for (const p of [open(...rules), closed(...rules)]) {
      for (const who of [alice, bob, anon, admin]) {
        for (const t of topics) {
          expect(p.explainPublish(who, t).allowed).toBe(p.authorizePublish(who, t));
          expect(p.explainRead(who, t).allowed).toBe(p.authorizeRead(who, t));
          expect(p.explainSubscribe(who, t).allowed).toBe(p.authorizeSubscribe(who, t));
        }
      }
    }
  });
});
