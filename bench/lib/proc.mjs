// CPU and memory of other processes, from Linux /proc: the broker's process tree
// (wrangler, workerd, ...) or any --pid. Ticks are converted with CLK_TCK = 100.
import { readdirSync, readFileSync, readlinkSync } from "node:fs";

const TICK_US = 10_000; // 1 / CLK_TCK (100 on Linux x86_64 and arm64)

/** @param {number} pid */
function stat(pid) {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, "utf8");
    const close = text.lastIndexOf(")");
    const comm = text.slice(text.indexOf("(") + 1, close);
    const f = text.slice(close + 2).split(" "); // f[0] is field 3 (state)
    return { pid, comm, ppid: Number(f[1]), pgrp: Number(f[2]), utime: Number(f[11]), stime: Number(f[12]) };
  } catch {
    return undefined;
  }
}

/** @returns {NonNullable<ReturnType<typeof stat>>[]} */
function allProcesses() {
  const out = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const s = stat(Number(name));
    if (s) out.push(s);
  }
  return out;
}

/**
 * `root` and every process below it (by parent pid), plus every member of its process group
 * when it leads one (startBroker runs wrangler as a group leader).
 * @param {number} root
 */
export function processTree(root) {
  const all = allProcesses();
  const children = new Map();
  for (const p of all) {
    if (!children.has(p.ppid)) children.set(p.ppid, []);
    children.get(p.ppid).push(p);
  }
  const found = new Map();
  const stack = all.filter((p) => p.pid === root || p.pgrp === root);
  while (stack.length) {
    const p = stack.pop();
    if (!p || found.has(p.pid)) continue;
    found.set(p.pid, p);
    stack.push(...(children.get(p.pid) ?? []));
  }
  return [...found.values()];
}

/**
 * CPU time (user + system, µs) of each process of the tree, by pid.
 * @param {number} root
 * @returns {Map<number, { comm: string, us: number }>}
 */
export function treeCpu(root) {
  const out = new Map();
  for (const p of processTree(root)) out.set(p.pid, { comm: p.comm, us: (p.utime + p.stime) * TICK_US });
  return out;
}

/**
 * CPU used between two treeCpu() readings, total and by command name. A process that
 * appeared in between counts from zero.
 * @param {Map<number, { comm: string, us: number }>} before
 * @param {Map<number, { comm: string, us: number }>} after
 */
export function cpuDelta(before, after) {
  let totalUs = 0;
  /** @type {Record<string, number>} */
  const byComm = {};
  for (const [pid, a] of after) {
    const d = Math.max(0, a.us - (before.get(pid)?.us ?? 0));
    totalUs += d;
    byComm[a.comm] = (byComm[a.comm] ?? 0) + d;
  }
  return { totalUs, byComm };
}

/**
 * Resident memory (VmRSS) of the tree's processes, optionally only those named `comm`.
 * @param {number} root
 * @param {string} [comm]
 */
export function treeRss(root, comm) {
  let kib = 0;
  const pids = [];
  for (const p of processTree(root)) {
    if (comm !== undefined && p.comm !== comm) continue;
    try {
      const m = /VmRSS:\s+(\d+)\s*kB/.exec(readFileSync(`/proc/${p.pid}/status`, "utf8"));
      if (m) {
        kib += Number(m[1]);
        pids.push(p.pid);
      }
    } catch {
      // exited
    }
  }
  return { kib, pids };
}

/**
 * What a process's file descriptors are, from /proc/<pid>/fd: Durable Object SQLite files
 * (database, -wal, -shm), sockets (with how many distinct ones: workerd holds each accepted
 * connection twice, the socket and a duplicate it watches for hang-up), and the rest.
 * @param {number} pid
 * @returns {{ total: number, sqlite: number, sqliteWal: number, sqliteShm: number, sockets: number, distinctSockets: number, other: number } | undefined}
 */
export function fdKinds(pid) {
  let names;
  try {
    names = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return undefined; // exited
  }
  const out = { total: 0, sqlite: 0, sqliteWal: 0, sqliteShm: 0, sockets: 0, distinctSockets: 0, other: 0 };
  const inodes = new Set();
  for (const name of names) {
    let target;
    try {
      target = readlinkSync(`/proc/${pid}/fd/${name}`);
    } catch {
      continue; // closed meanwhile
    }
    out.total++;
    if (target.endsWith(".sqlite")) out.sqlite++;
    else if (target.endsWith(".sqlite-wal")) out.sqliteWal++;
    else if (target.endsWith(".sqlite-shm")) out.sqliteShm++;
    else if (target.startsWith("socket:")) {
      out.sockets++;
      inodes.add(target);
    } else out.other++;
  }
  out.distinctSockets = inodes.size;
  return out;
}

/**
 * The soft limit on open files (RLIMIT_NOFILE) of a process, from /proc/<pid>/limits.
 * @param {number} pid
 * @returns {number | undefined}
 */
export function openFileLimit(pid) {
  try {
    const m = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync(`/proc/${pid}/limits`, "utf8"));
    return m && m[1] !== "unlimited" ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Pids of the tree's processes named `comm` (e.g. the workerd of a local broker).
 * @param {number} root @param {string} comm
 */
export function treePids(root, comm) {
  return processTree(root).filter((p) => p.comm === comm).map((p) => p.pid);
}

/**
 * CPU time run and time spent runnable but waiting for a core, summed over every thread of the
 * processes, in ms (/proc/<pid>/task/<tid>/schedstat: run ns, wait ns, timeslices). The wait
 * says how much a busy shared machine held a process back.
 * @param {number[]} pids
 */
export function schedstat(pids) {
  let runMs = 0;
  let waitMs = 0;
  for (const pid of pids) {
    let tids = [];
    try {
      tids = readdirSync(`/proc/${pid}/task`);
    } catch {
      continue; // exited
    }
    for (const tid of tids) {
      try {
        const [run, wait] = readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "utf8").trim().split(" ").map(Number);
        runMs += (run ?? 0) / 1e6;
        waitMs += (wait ?? 0) / 1e6;
      } catch {
        // thread gone
      }
    }
  }
  return { runMs, waitMs };
}
