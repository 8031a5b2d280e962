// Failure penalties (core/policy/penalty.ts): exponential waits after failed authentications, bounded.
import { describe, expect, it } from "vitest";
import { FailurePenalties } from "../../../core/policy";

const T0 = 1_700_000_000_000;

describe("FailurePenalties", () => {
  it("no failure: no wait", () => {
    expect(new FailurePenalties({ baseMs: 1000, maxMs: 60_000 }).waitMs("k", T0)).toBe(0);
  });

  it("after n failures the next attempt waits base * 2^(n-1) from the last one, at most max", () => {
    const p = new FailurePenalties({ baseMs: 1000, maxMs: 60_000 });
    const expected = [1000, 2000, 4000, 8000, 16_000, 32_000, 60_000, 60_000];
    for (const wait of expected) {
      p.failed("k", T0);
      expect(p.waitMs("k", T0)).toBe(wait);
    }
    expect(p.waitMs("k", T0 + 59_000)).toBe(1000);
    expect(p.waitMs("k", T0 + 60_000)).toBe(0);
    expect(p.waitMs("other", T0)).toBe(0);
  });

  it("many failures do not overflow", () => {
    const p = new FailurePenalties({ baseMs: 1000, maxMs: 60_000 });
    for (let i = 0; i < 5000; i++) p.failed("k", T0);
    expect(p.waitMs("k", T0)).toBe(60_000);
  });

  it("a success forgets the key", () => {
    const p = new FailurePenalties({ baseMs: 1000, maxMs: 60_000 });
    p.failed("k", T0);
    p.failed("k", T0);
    p.succeeded("k");
    expect(p.waitMs("k", T0)).toBe(0);
    p.failed("k", T0);
    expect(p.waitMs("k", T0)).toBe(1000); // counting starts again
    expect(p.size).toBe(1);
  });

  it("a key quiet for forgetAfterMs (default 10 * max) is forgotten: the count starts again", () => {
    const p = new FailurePenalties({ baseMs: 1000, maxMs: 60_000 });
    for (let i = 0; i < 4; i++) p.failed("k", T0);
    p.failed("young", T0 + 500_000);
    p.failed("k2", T0 + 600_000); // prunes "k", quiet for 600 s
    expect(p.size).toBe(2);
    p.failed("k", T0 + 600_000);
    expect(p.waitMs("k", T0 + 600_000)).toBe(1000);
    const q = new FailurePenalties({ baseMs: 1000, maxMs: 60_000, forgetAfterMs: 5000 });
    q.failed("k", T0);
    q.failed("k", T0);
    expect(q.waitMs("k", T0 + 4999)).toBe(0); // 2 s waited out already
    expect(q.size).toBe(1);
    expect(q.waitMs("k", T0 + 5000)).toBe(0);
    expect(q.size).toBe(0);
  });

  it("holds at most maxKeys, evicting the one whose last failure is oldest", () => {
    const p = new FailurePenalties({ baseMs: 1000, maxMs: 60_000, maxKeys: 3 });
    p.failed("a", T0);
    p.failed("b", T0 + 1);
    p.failed("c", T0 + 2);
    p.failed("a", T0 + 3); // a is now the newest
    p.failed("d", T0 + 4); // evicts b
    expect(p.size).toBe(3);
    expect(p.waitMs("b", T0 + 4)).toBe(0);
    expect(p.waitMs("a", T0 + 4)).toBeGreaterThan(0);
    expect(p.waitMs("c", T0 + 4)).toBeGreaterThan(0);
    for (let i = 0; i < 10_000; i++) p.failed(`addr-${i}`, T0 + 10 + i);
    expect(p.size).toBe(3);
  });

  it("default bound: 10,000 keys", () => {
    const p = new FailurePenalties({ baseMs: 1000, maxMs: 60_000 });
    for (let i = 0; i < 12_000; i++) p.failed(`k${i}`, T0);
    expect(p.size).toBe(10_000);
    expect(p.waitMs("k0", T0)).toBe(0);
    expect(p.waitMs("k11999", T0)).toBe(1000);
  });
});
