// Node reference run of the codec benchmark, in its own process (started by run.mjs with the
// path of cases.ts bundled for Node). Times runCase directly; same method as in workerd.
// Prints one JSON array on stdout.
import { pathToFileURL } from "node:url";
import { measure } from "./measure.mjs";

const [bundle, optionsJson] = process.argv.slice(2);
if (!bundle || !optionsJson) throw new Error("usage: node-child.mjs <cases bundle> <options json>");
/** @type {{ targetMs: number, reps: number }} */
const options = JSON.parse(optionsJson);
const { allCases, runCase, selfCheck } = await import(pathToFileURL(bundle).href);

const results = [];
for (const c of allCases()) {
  /** @type {import("./measure.mjs").Timer} */
  const time = async (impl, n) => {
    const t = performance.now();
    const sum = runCase(impl, c.op, c.packet, c.version, n);
    const ms = performance.now() - t;
    if (Number.isNaN(sum)) throw new Error(`${impl} ${c.op} ${c.packet} v${c.version}: checksum NaN (decode failed)`);
    return ms;
  };
  results.push({ ...c, m: await measure(c.impls, time, options) });
  process.stderr.write(".");
}
process.stderr.write("\n");
process.stdout.write(JSON.stringify({ selfCheck: selfCheck(), results }));
