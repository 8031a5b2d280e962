// Per-thread CPU (utime, stime) of a process tree, from /proc/<pid>/task/<tid>/stat: does
// workerd spend its CPU on the isolate's thread (the one the profiler samples) or elsewhere?
import { readdirSync, readFileSync } from "node:fs";
import { processTree } from "../lib/proc.mjs";

const TICK_US = 10_000;

/** @param {number} root @returns {Map<string, { name: string, userUs: number, sysUs: number }>} key pid/tid */
export function threadCpu(root) {
  const out = new Map();
  for (const p of processTree(root)) {
    let tids = [];
    try {
      tids = readdirSync(`/proc/${p.pid}/task`);
    } catch {
      continue;
    }
    for (const tid of tids) {
      try {
        const text = readFileSync(`/proc/${p.pid}/task/${tid}/stat`, "utf8");
        const close = text.lastIndexOf(")");
        const name = `${p.comm}/${text.slice(text.indexOf("(") + 1, close)}`;
        const f = text.slice(close + 2).split(" ");
        out.set(`${p.pid}/${tid}`, { name, userUs: Number(f[11]) * TICK_US, sysUs: Number(f[12]) * TICK_US });
      } catch {
        // thread gone
      }
    }
  }
  return out;
}

/**
 * Threads that used CPU between two snapshots, busiest first.
 * @param {ReturnType<typeof threadCpu>} before @param {ReturnType<typeof threadCpu>} after
 */
export function threadDelta(before, after) {
  const rows = [];
  for (const [key, a] of after) {
    const b = before.get(key) ?? { userUs: 0, sysUs: 0 };
    const userUs = a.userUs - b.userUs;
    const sysUs = a.sysUs - b.sysUs;
    if (userUs + sysUs > 0) rows.push({ thread: `${a.name} ${key}`, userMs: userUs / 1000, sysMs: sysUs / 1000 });
  }
  return rows.sort((x, y) => y.userMs + y.sysMs - (x.userMs + x.sysMs));
}
