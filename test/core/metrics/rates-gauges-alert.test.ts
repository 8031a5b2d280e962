import { describe, expect, it } from "vitest";
import { GaugeTable, RateRing, ratesOf, retainedAlertStep, type RetainedAlert } from "../../../core/metrics";

const T0 = 1_700_000_000_000; // a multiple of 10 s

describe("RateRing", () => {
  it("averages over the buckets the window covers, the current one for its elapsed part", () => {
    const ring = new RateRing();
    // 60 messages in each 10 s bucket for a minute: 6 per second.
    for (let i = 0; i < 6; i++) ring.add(T0 + i * 10_000 + 500, { received: 60 });
    const now = T0 + 60_000; // a new, empty bucket just began
    // Window: the current bucket and the 5 before it, covering 50 s; they hold 5 × 60.
    expect(ring.rate(now, "received", 60)).toBeCloseTo(300 / 50);
    expect(ring.rate(T0 + 59_999, "received", 60)).toBeCloseTo(360 / 59.999);
    expect(ring.rate(now, "sent", 60)).toBe(0);
  });

  it("counts several reports in one bucket, and series apart", () => {
    const ring = new RateRing();
    ring.add(T0 + 1_000, { received: 3, sent: 6 });
    ring.add(T0 + 2_000, { received: 7, sent: 0 });
    // The window is a minute whether or not anything came before: 5 buckets back, 55 s covered.
    expect(ring.rate(T0 + 5_000, "received", 60)).toBeCloseTo(10 / 55);
    expect(ring.rate(T0 + 5_000, "sent", 60)).toBeCloseTo(6 / 55);
    // A 10 s window is the current bucket alone.
    expect(ring.rate(T0 + 5_000, "received", 10)).toBeCloseTo(10 / 5);
  });

  it("forgets what is older than the window, and older than 15 minutes altogether", () => {
    const ring = new RateRing();
    ring.add(T0, { received: 600 });
    const later = T0 + 5 * 60_000;
    expect(ring.rate(later, "received", 60)).toBe(0);
    expect(ring.rate(later, "received", 900)).toBeGreaterThan(0);
    ring.add(T0 + 16 * 60_000, { received: 1 });
    expect(ring.state.buckets).toHaveLength(1);
    expect(ring.rate(T0 + 16 * 60_000 + 5_000, "received", 900)).toBeCloseTo(1 / (900 - 10 + 5));
  });

  it("gives Mosquitto's 1, 5 and 15 minute windows, and survives a round trip through its state", () => {
    const ring = new RateRing();
    for (let s = 0; s < 900; s += 10) ring.add(T0 + s * 1000, { sent: 10 }); // 1 per second for 15 min
    const now = T0 + 900_000;
    const rates = ratesOf(ring, now, "sent");
    // The bucket just begun is empty: (n - 1) buckets of 10 over (n - 1) × 10 s.
    expect(rates["1min"]).toBeCloseTo(1);
    expect(rates["5min"]).toBeCloseTo(1);
    expect(rates["15min"]).toBeCloseTo(1);
    const copy = new RateRing(JSON.parse(JSON.stringify(ring.state)));
    expect(ratesOf(copy, now, "sent")).toEqual(rates);
  });

  it("drops a saved state of another bucket length rather than misread it", () => {
    const ring = new RateRing({ bucketSeconds: 60, buckets: [{ start: T0, counts: { received: 5 } }] }, 10);
    expect(ring.state).toEqual({ bucketSeconds: 10, buckets: [] });
    const same = new RateRing({ bucketSeconds: 10, buckets: [{ start: T0, counts: { received: 5 } }] }, 10);
    expect(same.rate(T0 + 5_000, "received", 10)).toBeCloseTo(1);
  });

  it("counts a report whose clock went back in the newest bucket", () => {
    const ring = new RateRing();
    ring.add(T0 + 20_000, { received: 1 });
    ring.add(T0 + 5_000, { received: 1 });
    expect(ring.state.buckets).toEqual([{ start: T0 + 20_000, counts: { received: 2 } }]);
  });
});

describe("GaugeTable", () => {
  it("keeps the latest value per object and label and sums them", () => {
    const g = new GaugeTable();
    expect(g.sum("retained")).toBeUndefined();
    expect(g.report("shard", "id0", [{ name: "retained", value: 3, label: "shard-0" }], 1)).toBe(true);
    g.report("shard", "id1", [{ name: "retained", value: 4, label: "shard-1" }, { name: "subscriptions", value: 2, label: "shard-1" }], 2);
    expect(g.report("shard", "id0", [{ name: "retained", value: 3, label: "shard-0" }], 3)).toBe(false); // unchanged
    g.report("shard", "id0", [{ name: "retained", value: 1, label: "shard-0" }], 4);
    expect(g.sum("retained")).toBe(5);
    expect(g.sum("subscriptions")).toBe(2);
    expect(g.byLabel("retained")).toEqual({ "shard-0": 1, "shard-1": 4 });
  });

  it("keeps a reported 0 (a shard that emptied is not a shard that never reported)", () => {
    const g = new GaugeTable();
    g.report("shard", "a", [{ name: "retained", value: 0, label: "shard-0" }], 1);
    expect(g.sum("retained")).toBe(0);
    expect(g.has("retained")).toBe(true);
  });

  it("sorts labels numerically and falls back to the object id", () => {
    const g = new GaugeTable();
    for (const i of [10, 2, 1]) g.report("shard", `id${i}`, [{ name: "retained", value: i, label: `shard-${i}` }], i);
    g.report("presence", "p0", [{ name: "connections", value: 7 }], 1);
    expect(Object.keys(g.byLabel("retained"))).toEqual(["shard-1", "shard-2", "shard-10"]);
    expect(g.byLabel("connections")).toEqual({ p0: 7 });
  });

  it("is bounded: past the bound the entry refreshed longest ago goes", () => {
    const g = new GaugeTable([], 3);
    for (let i = 0; i < 3; i++) g.report("shard", `id${i}`, [{ name: "retained", value: 1 }], i);
    g.report("shard", "id0", [{ name: "retained", value: 1 }], 10); // refreshed: now the newest
    g.report("shard", "id3", [{ name: "retained", value: 1 }], 11);
    expect(g.size).toBe(3);
    expect(Object.keys(g.byLabel("retained")).sort()).toEqual(["id0", "id2", "id3"]);
  });

  it("comes back from its saved entries, ignoring values that are not numbers", () => {
    const g = new GaugeTable();
    g.report("shard", "a", [{ name: "retained", value: 2, label: "shard-0" }, { name: "retained", value: Number.NaN, label: "x" }], 5);
    const copy = new GaugeTable(JSON.parse(JSON.stringify(g.entries())));
    expect(copy.byLabel("retained")).toEqual({ "shard-0": 2 });
  });
});

describe("retained alert", () => {
  it("is raised once when the count passes the threshold and cleared once below it", () => {
    let alert: RetainedAlert | null = null;
    const changes: string[] = [];
    for (const [i, count] of [3, 4, 5, 3, 4, 2, 2, 4].entries()) {
      const step = retainedAlertStep(alert, count, 3, 1000 + i);
      alert = step.alert;
      if (step.change) changes.push(`${step.change.kind}@${count}`);
    }
    // 4 > 3 raises; 5 and 3 (at the threshold) keep it; 4 again keeps it; 2 < 3 clears; 4 raises again.
    expect(changes).toEqual(["raised@4", "cleared@2", "raised@4"]);
    expect(alert).toEqual({ count: 4, threshold: 3, at: 1007 });
  });

  it("is off with threshold 0, and turning it off clears one that was raised", () => {
    expect(retainedAlertStep(null, 1_000_000, 0, 1)).toEqual({ alert: null });
    const raised = { count: 10, threshold: 5, at: 1 };
    expect(retainedAlertStep(raised, 10, 0, 2)).toEqual({ alert: null, change: { kind: "cleared", previous: raised } });
  });

  it("follows a changed threshold", () => {
    const raised = { count: 10, threshold: 5, at: 1 };
    expect(retainedAlertStep(raised, 10, 50, 2).change?.kind).toBe("cleared");
    expect(retainedAlertStep(null, 10, 9, 2).change?.kind).toBe("raised");
  });
});
