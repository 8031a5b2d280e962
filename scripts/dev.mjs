#!/usr/bin/env node
// `npm run dev`: plain `wrangler dev` (same wrangler.toml, interactive, live
// reload) with the broker's no-network environment. Extra args go to wrangler.
import { spawn } from "node:child_process";
import { join } from "node:path";
import { brokerEnv, nodeBinary, ROOT } from "./broker-process.mjs";

const { CI: _ci, ...env } = brokerEnv(); // without CI: keep wrangler's interactive hotkeys
const child = spawn(nodeBinary(), [join(ROOT, "node_modules", "wrangler", "bin", "wrangler.js"), "dev", ...process.argv.slice(2)], {
  cwd: ROOT,
  env,
  stdio: "inherit",
});
for (const signal of /** @type {const} */ (["SIGINT", "SIGTERM"])) process.on(signal, () => child.kill(signal));
child.on("exit", (code, signal) => process.exit(signal ? 1 : (code ?? 0)));
