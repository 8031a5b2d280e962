import { describe, expect, it } from "vitest";
import { Batcher, joinedPieces, piecesOf } from "../../../core/util/batcher";

/** A destination whose calls complete when the test says so. */
function destination() {
  const calls: Array<{ items: number[]; done: (fail?: unknown) => void }> = [];
  const send = (items: number[]) =>
    new Promise<number[]>((resolve, reject) => {
      calls.push({ items, done: (fail) => (fail ? reject(fail) : resolve(items.map((i) => i * 10))) });
    });
  return { calls, send };
}

const tick = () => new Promise((r) => setTimeout(r, 0));

describe("Batcher", () => {
  it("sends the first item at once, alone, and batches what arrives while it is in flight", async () => {
    const d = destination();
    const b = new Batcher(d.send);
    const first = b.push(1);
    expect(d.calls.map((c) => c.items)).toEqual([[1]]);
    const rest = [b.push(2), b.push(3), b.push(4)];
    expect(d.calls).toHaveLength(1); // never two calls at once
    d.calls[0]!.done();
    expect(await first).toBe(10);
    await tick();
    expect(d.calls.map((c) => c.items)).toEqual([[1], [2, 3, 4]]);
    d.calls[1]!.done();
    expect(await Promise.all(rest)).toEqual([20, 30, 40]);
    expect(b.idle).toBe(true);
  });

  it("keeps order across calls and respects the batch size", async () => {
    const d = destination();
    const b = new Batcher(d.send, 2);
    const all = [1, 2, 3, 4, 5].map((i) => b.push(i));
    for (let i = 0; i < 3; i++) {
      await tick();
      d.calls[i]!.done();
    }
    expect(await Promise.all(all)).toEqual([10, 20, 30, 40, 50]);
    expect(d.calls.map((c) => c.items)).toEqual([[1], [2, 3], [4, 5]]);
  });

  it("a call carries at most maxWeight of the items' weight, one item always; queuedWeight counts what waits", async () => {
    const d = destination();
    const b = new Batcher(d.send, 512, (i) => i, 10);
    const all = [9, 4, 5, 2, 30, 1].map((i) => b.push(i));
    expect(b.queuedWeight).toBe(42); // 9 left at once, alone
    for (let i = 0; i < 5; i++) {
      await tick();
      d.calls[i]!.done();
    }
    await Promise.all(all);
    expect(d.calls.map((c) => c.items)).toEqual([[9], [4, 5], [2], [30], [1]]);
    expect(b.queuedWeight).toBe(0);
  });

  it("a failed call rejects its items only; the next batch still goes", async () => {
    const d = destination();
    const b = new Batcher(d.send);
    const first = b.push(1);
    const second = b.push(2);
    d.calls[0]!.done(new Error("down"));
    await expect(first).rejects.toThrow("down");
    await tick();
    d.calls[1]!.done();
    expect(await second).toBe(20);
  });

  it("settled() waits for every item pushed before it, failed calls included, and not for later ones", async () => {
    const d = destination();
    const b = new Batcher(d.send);
    await b.settled(); // nothing pushed: at once
    const first = b.push(1);
    const second = b.push(2);
    let settled = false;
    const barrier = b.settled().then(() => (settled = true));
    const third = b.push(3);
    d.calls[0]!.done(new Error("down"));
    await expect(first).rejects.toThrow("down");
    await tick();
    expect(settled).toBe(false); // 2 still in flight
    d.calls[1]!.done();
    await barrier;
    expect(await second).toBe(20);
    expect(settled).toBe(true);
    // 3 went in the same call as 2; a push after settled() was asked for is not waited for.
    expect(await third).toBe(30);
    const fourth = b.push(4);
    let late = false;
    void b.settled().then(() => (late = true));
    await tick();
    expect(late).toBe(false);
    d.calls[2]!.done();
    expect(await fourth).toBe(40);
  });
});

describe("piecesOf", () => {
  const f = (n: number) => new Uint8Array(n);
  const sizes = (pieces: Uint8Array[][]) => pieces.map((p) => p.map((x) => x.byteLength));
  it("cuts packets into pieces of at most maxBytes, in order; a larger packet stands alone", () => {
    expect(sizes(piecesOf([f(3), f(4), f(2), f(9), f(1)], 8))).toEqual([[3, 4], [2], [9], [1]]);
  });
  it("no packets: one empty piece (a close alone still goes)", () => {
    expect(piecesOf([], 8)).toEqual([[]]);
  });
});

describe("joinedPieces", () => {
  const bytes = (...xs: number[]) => Uint8Array.from(xs);
  it("joins consecutive packets up to maxBytes, in order; a larger packet goes alone, unjoined", () => {
    const big = bytes(7, 7, 7, 7, 7);
    const out = joinedPieces([bytes(1, 2), bytes(3), big, bytes(4), bytes(5, 6)], 4);
    expect(out.map((b) => [...b])).toEqual([[1, 2, 3], [7, 7, 7, 7, 7], [4, 5, 6]]);
    expect(out[1]).toBe(big);
  });
  it("maxBytes 0, or a single packet: the packets as they are", () => {
    const one = [bytes(1), bytes(2)];
    expect(joinedPieces(one, 0)).toBe(one);
    const single = [bytes(9)];
    expect(joinedPieces(single, 1024)).toBe(single);
    expect(joinedPieces([], 1024)).toEqual([]);
  });
});
