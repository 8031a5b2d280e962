// Timing method shared by the workerd and Node runs of the codec benchmark.
// For each implementation: calibrate n so that one timed run lasts about `targetMs`, then
// `reps` times (alternating which implementation goes first) time n = 0 and n = N;
// cost per operation = (median(t_N) - median(t_0)) / N. The n = 0 run carries every fixed
// cost (request, setup) and none of the loop.

/** @typedef {(impl: string, n: number) => Promise<number>} Timer  elapsed ms of one run */
/** @typedef {{ n: number, nsPerOp: number, spread: number, baselineMs: number }} Measurement */

/** @param {number[]} xs */
export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? /** @type {number} */ (s[m]) : (/** @type {number} */ (s[m - 1]) + /** @type {number} */ (s[m])) / 2;
}

/**
 * @param {string[]} impls
 * @param {Timer} time
 * @param {{ targetMs: number, reps: number }} options
 * @returns {Promise<Record<string, Measurement>>}
 */
export async function measure(impls, time, { targetMs, reps }) {
  /** @type {Record<string, number>} */
  const ns = {};
  for (const impl of impls) {
    const base = Math.min(await time(impl, 0), await time(impl, 0), await time(impl, 0));
    let n = 1000;
    for (;;) {
      const t = (await time(impl, n)) - base;
      if (t >= targetMs / 5 || n >= 5e7) {
        ns[impl] = Math.max(1000, Math.min(5e7, Math.round((n * targetMs) / Math.max(t, 0.01))));
        break;
      }
      n *= 5;
    }
    await time(impl, /** @type {number} */ (ns[impl])); // warm-up at full size
  }
  /** @type {Record<string, { t0: number[], tn: number[] }>} */
  const samples = Object.fromEntries(impls.map((i) => [i, { t0: [], tn: [] }]));
  for (let r = 0; r < reps; r++) {
    const order = r % 2 ? [...impls].reverse() : impls;
    for (const impl of order) {
      const s = /** @type {{ t0: number[], tn: number[] }} */ (samples[impl]);
      s.t0.push(await time(impl, 0));
      s.tn.push(await time(impl, /** @type {number} */ (ns[impl])));
    }
  }
  /** @type {Record<string, Measurement>} */
  const out = {};
  for (const impl of impls) {
    const { t0, tn } = /** @type {{ t0: number[], tn: number[] }} */ (samples[impl]);
    const n = /** @type {number} */ (ns[impl]);
    const b = median(t0);
    const nsPerOp = ((median(tn) - b) / n) * 1e6;
    const each = tn.map((t) => ((t - b) / n) * 1e6);
    out[impl] = { n, nsPerOp, spread: (Math.max(...each) - Math.min(...each)) / nsPerOp, baselineMs: b };
  }
  return out;
}
