#!/usr/bin/env node
// Aggregates a V8 .cpuprofile (from workerd's inspector) by function and by source file.
//
//   node bench/profile/analyze.mjs <profile.cpuprofile.json> <bundle copy .js> [--top N] [--entry index.js]
//
// The Worker runs as one esbuild bundle; esbuild marks every source file's section with a
// `// path/to/file.ts` comment line, so a frame's line number in the bundle gives its file.
// Frames with no URL are V8 builtins or workerd's native API methods (SQLite `exec`,
// WebSocket `send`, `serializeAttachment`, JSON, ...): they are kept under their own name
// ("native") and also charged to the nearest bundle frame above them ("via").
import { readFileSync } from "node:fs";

/**
 * @typedef {{ functionName: string, url: string, lineNumber: number, columnNumber: number, scriptId?: string }} CallFrame
 * @typedef {{ id: number, callFrame: CallFrame, children?: number[], parent?: number }} ProfileNode
 * @typedef {{ nodes: ProfileNode[], samples: number[], timeDeltas: number[], startTime: number, endTime: number }} CpuProfile
 * @typedef {{ key: string, name: string, file: string, line: number, kind: string }} Fn
 * @typedef {{ key: string, name: string, file: string, kind: string, selfUs: number, totalUs: number, selfPct: number, totalPct: number }} FnRow
 * @typedef {{ file: string, selfUs: number, totalUs: number, selfPct: number, totalPct: number }} FileRow
 */

/**
 * Bundle line (0-based) → source file, from esbuild's `// file` section comments.
 * @param {string} source
 * @returns {(line: number) => string}
 */
export function sectionMap(source) {
  const lines = source.split("\n");
  /** @type {string[]} */
  const fileAt = new Array(lines.length);
  let current = "(bundle prelude)";
  const marker = /^\/\/ ((?:node_modules|core|durable-objects|worker|db|bench|\.\.?)\/[^\s]+\.(?:[cm]?[jt]sx?|json))$/;
  for (let i = 0; i < lines.length; i++) {
    const m = marker.exec(/** @type {string} */ (lines[i]));
    if (m) current = /** @type {string} */ (m[1]);
    fileAt[i] = current;
  }
  return (line) => fileAt[line] ?? "(bundle)";
}

/**
 * @param {CpuProfile} profile
 * @param {{ bundleUrl: (url: string) => boolean, fileOf: (line: number) => string, top?: number }} o
 */
export function analyze(profile, { bundleUrl, fileOf, top = 15 }) {
  /** @type {Map<number, ProfileNode>} */
  const byId = new Map();
  for (const n of profile.nodes) byId.set(n.id, n);
  for (const n of profile.nodes) for (const c of n.children ?? []) {
    const child = byId.get(c);
    if (child) child.parent = n.id;
  }

  /** @type {Map<number, Fn>} */
  const fnOf = new Map();
  for (const n of profile.nodes) {
    const { functionName, url, lineNumber } = n.callFrame;
    const name = functionName || "(anonymous)";
    let file;
    let kind;
    if (name.startsWith("(") && !url) {
      file = name; // (root) (program) (idle) (garbage collector)
      kind = "vm";
    } else if (bundleUrl(url)) {
      file = fileOf(lineNumber);
      kind = file.startsWith("node_modules/") ? "dependency" : "ours";
    } else if (!url) {
      file = "(native)";
      kind = "native";
    } else {
      file = url.replace(/^.*\//, "");
      kind = "runtime-js";
    }
    const key = kind === "native" || kind === "vm" ? `${name} [${file}]` : `${name} ${file}:${lineNumber + 1}`;
    fnOf.set(n.id, { key, name, file, line: lineNumber + 1, kind });
  }

  // A sample lasts until the next one.
  const { samples, timeDeltas } = profile;
  const mean = samples.length > 1 ? (profile.endTime - profile.startTime) / samples.length : 0;
  /** @param {number} i */
  const dur = (i) => (i + 1 < timeDeltas.length ? Math.max(0, /** @type {number} */ (timeDeltas[i + 1])) : mean);

  /** @type {Map<string, { fn: Fn, self: number, total: number }>} */
  const fns = new Map();
  /** @type {Map<string, { self: number, total: number }>} */
  const files = new Map();
  /** native function → nearest bundle file above it → time */
  /** @type {Map<string, Map<string, number>>} */
  const via = new Map();
  let all = 0;
  let idle = 0;
  let program = 0;
  let gc = 0;
  for (let i = 0; i < samples.length; i++) {
    const id = /** @type {number} */ (samples[i]);
    const t = dur(i);
    all += t;
    const leaf = /** @type {Fn} */ (fnOf.get(id));
    if (leaf.name === "(idle)") {
      idle += t;
      continue;
    }
    if (leaf.name === "(program)") program += t;
    if (leaf.name === "(garbage collector)") gc += t;
    const seenFn = new Set();
    const seenFile = new Set();
    /** @type {string[]} the nearest bundle frames above the leaf (for native leaves) */
    const callers = [];
    for (let n = byId.get(id); n; n = n.parent === undefined ? undefined : byId.get(n.parent)) {
      const f = /** @type {Fn} */ (fnOf.get(n.id));
      if (f.name === "(root)") break;
      if (callers.length < 3 && (f.kind === "ours" || f.kind === "dependency")) callers.push(`${f.name} ${f.file.replace(/^.*\//, "")}:${f.line}`);
      let e = fns.get(f.key);
      if (!e) fns.set(f.key, (e = { fn: f, self: 0, total: 0 }));
      if (n.id === id) e.self += t;
      if (!seenFn.has(f.key)) {
        seenFn.add(f.key);
        e.total += t;
      }
      let fe = files.get(f.file);
      if (!fe) files.set(f.file, (fe = { self: 0, total: 0 }));
      if (n.id === id) fe.self += t;
      if (!seenFile.has(f.file)) {
        seenFile.add(f.file);
        fe.total += t;
      }
    }
    if (leaf.kind === "native" || leaf.kind === "vm") {
      let m = via.get(leaf.key);
      if (!m) via.set(leaf.key, (m = new Map()));
      const k = callers.length ? callers.join(" < ") : "(no bundle frame)";
      m.set(k, (m.get(k) ?? 0) + t);
    }
  }
  const busy = all - idle;
  const pct = (/** @type {number} */ x) => (busy > 0 ? Math.round((1000 * x) / busy) / 10 : 0);
  /** @type {FnRow[]} */
  const fnRows = [...fns.values()].map(({ fn, self, total }) => ({
    key: fn.key,
    name: fn.name,
    file: fn.file,
    kind: fn.kind,
    selfUs: Math.round(self),
    totalUs: Math.round(total),
    selfPct: pct(self),
    totalPct: pct(total),
  }));
  /** @type {FileRow[]} */
  const fileRows = [...files.entries()].map(([file, { self, total }]) => ({
    file,
    selfUs: Math.round(self),
    totalUs: Math.round(total),
    selfPct: pct(self),
    totalPct: pct(total),
  }));
  /** @type {Record<string, number>} */
  const byKind = {};
  for (const r of fnRows) byKind[r.kind] = (byKind[r.kind] ?? 0) + r.selfPct;
  for (const k of Object.keys(byKind)) byKind[k] = Math.round(10 * (byKind[k] ?? 0)) / 10;
  const viaRows = [...via.entries()]
    .map(([key, m]) => ({ key, self: [...m.values()].reduce((a, b) => a + b, 0), by: [...m.entries()].sort((a, b) => b[1] - a[1]).slice(0, 5).map(([f, t]) => `${f} ${pct(t)}%`) }))
    .sort((a, b) => b.self - a.self);
  return {
    wallUs: Math.round(profile.endTime - profile.startTime),
    samples: samples.length,
    busyUs: Math.round(busy),
    idleUs: Math.round(idle),
    programPct: pct(program),
    gcPct: pct(gc),
    selfByKindPct: byKind,
    topSelf: [...fnRows].sort((a, b) => b.selfUs - a.selfUs).slice(0, top),
    topTotal: [...fnRows].sort((a, b) => b.totalUs - a.totalUs).slice(0, top),
    files: fileRows.sort((a, b) => b.selfUs - a.selfUs),
    nativeCallers: Object.fromEntries(viaRows.map((r) => [r.key, r.by])),
  };
}

/** @param {ReturnType<typeof analyze>} s @param {string} [title] */
export function format(s, title = "") {
  const out = [];
  const ms = (/** @type {number} */ us) => (us / 1000).toFixed(0).padStart(7);
  out.push(`== ${title} wall ${ms(s.wallUs)} ms, busy (not idle) ${ms(s.busyUs)} ms, ${s.samples} samples; % of busy time`);
  out.push(`   (program) ${s.programPct}%  (garbage collector) ${s.gcPct}%  self by kind: ${JSON.stringify(s.selfByKindPct)}`);
  out.push("-- top self time");
  for (const r of s.topSelf) out.push(`${String(r.selfPct).padStart(6)}%  ${ms(r.selfUs)} ms  ${r.key}`);
  out.push("-- top total time");
  for (const r of s.topTotal) out.push(`${String(r.totalPct).padStart(6)}%  ${ms(r.totalUs)} ms  ${r.key}`);
  out.push("-- per file: self% / total%");
  for (const r of s.files.filter((f) => f.selfPct >= 0.2 || f.totalPct >= 1))
    out.push(`${String(r.selfPct).padStart(6)}% ${String(r.totalPct).padStart(6)}%  ${r.file}`);
  out.push("-- native / vm frames (self), by the nearest bundle function above them");
  for (const [key, by] of Object.entries(s.nativeCallers).slice(0, 10)) {
    out.push(`  ${key}:`);
    for (const b of by) out.push(`      ${b}`);
  }
  return out.join("\n");
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].replace(/^.*\//, "")) && process.argv[1].endsWith("analyze.mjs")) {
  const [profilePath, bundlePath] = process.argv.slice(2);
  if (!profilePath || !bundlePath) {
    console.error("usage: node bench/profile/analyze.mjs <profile.cpuprofile.json> <bundle.js> [--top N]");
    process.exit(2);
  }
  const topArg = process.argv.indexOf("--top");
  const top = topArg > 0 ? Number(process.argv[topArg + 1]) : 15;
  const profile = JSON.parse(readFileSync(profilePath, "utf8"));
  const fileOf = sectionMap(readFileSync(bundlePath, "utf8"));
  // The profile names the bundle by its module name in workerd (wrangler writes index.js).
  const entryArg = process.argv.indexOf("--entry");
  const entry = entryArg > 0 ? String(process.argv[entryArg + 1]) : "index.js";
  console.log(format(analyze(profile, { bundleUrl: (u) => u === entry || u.endsWith(`/${entry}`), fileOf, top }), profilePath));
}
