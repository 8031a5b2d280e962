// The local secrets file (.dev.vars, dotenv syntax, gitignored): created by `npm start` from the
// committed .dev.vars.example with a random ADMIN_TOKEN, read by `npm run admin` for the token.
import { randomBytes } from "node:crypto";
import { appendFileSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "./broker-process.mjs";

export const DEV_VARS = join(ROOT, ".dev.vars");
export const DEV_VARS_EXAMPLE = join(ROOT, ".dev.vars.example");

/** A fresh admin token: 32 random bytes, base64url (43 characters). */
export function randomToken() {
  return randomBytes(32).toString("base64url");
}

/**
 * Parses dotenv-style `NAME=value` lines (comments, blank lines, optional quotes, `export `).
 * @param {string} text
 * @returns {Record<string, string>}
 */
export function parseDevVars(text) {
  /** @type {Record<string, string>} */
  const vars = {};
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const m = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$/.exec(line);
    if (!m) continue;
    let value = (m[2] ?? "").trim();
    const quoted = /^(["'])(.*)\1$/.exec(value);
    if (quoted) value = quoted[2] ?? "";
    else value = value.replace(/\s+#.*$/, "");
    vars[m[1] ?? ""] = value;
  }
  return vars;
}

/**
 * Reads a secrets file; undefined when it does not exist.
 * @param {string} [path]
 */
export function readDevVars(path = DEV_VARS) {
  return existsSync(path) ? parseDevVars(readFileSync(path, "utf8")) : undefined;
}

/** What ensureDevVars appends to a secrets file that predates the ALLOW_ANONYMOUS setting. */
export const ALLOW_ANONYMOUS_APPENDIX = [
  "",
  "# Added by `npm start`: this file predates the ALLOW_ANONYMOUS setting, and without it the",
  "# broker would take the committed default (off: a user name and password or token required).",
  "# Local clients keep connecting without a user name as before; set false to require credentials.",
  "ALLOW_ANONYMOUS=true",
  "",
].join("\n");

/**
 * Makes sure the secrets file exists: when it is missing, writes it from the example with
 * ADMIN_TOKEN set to a random token (mode 0600). Never returns or prints the token.
 * An existing file that does not set ALLOW_ANONYMOUS (written before the setting existed) gets
 * `ALLOW_ANONYMOUS=true` appended with a comment (`addedAllowAnonymous`): an upgrade must not
 * lock the local clients out silently; one that sets it, true or false, is left alone.
 * @param {{ path?: string, example?: string }} [options]
 * @returns {{ created: boolean, path: string, hasAdminToken: boolean, addedAllowAnonymous: boolean }}
 */
export function ensureDevVars({ path = DEV_VARS, example = DEV_VARS_EXAMPLE } = {}) {
  if (existsSync(path)) {
    const text = readFileSync(path, "utf8");
    const vars = parseDevVars(text);
    const addedAllowAnonymous = !("ALLOW_ANONYMOUS" in vars);
    if (addedAllowAnonymous) appendFileSync(path, (text === "" || text.endsWith("\n") ? "" : "\n") + ALLOW_ANONYMOUS_APPENDIX);
    return { created: false, path, hasAdminToken: Boolean(vars.ADMIN_TOKEN), addedAllowAnonymous };
  }
  const template = existsSync(example) ? readFileSync(example, "utf8") : "ADMIN_TOKEN=\n";
  const token = randomToken();
  let text = template.replace(/^ADMIN_TOKEN=.*$/m, `ADMIN_TOKEN=${token}`);
  if (!/^ADMIN_TOKEN=/m.test(text)) text += `\nADMIN_TOKEN=${token}\n`;
  // An example without the setting (an old checkout's): the local default is on all the same.
  if (!("ALLOW_ANONYMOUS" in parseDevVars(text))) text += ALLOW_ANONYMOUS_APPENDIX;
  // "wx": never overwrite a file created meanwhile; 0600: a secret, readable by its owner only.
  writeFileSync(path, text, { flag: "wx", mode: 0o600 });
  return { created: true, path, hasAdminToken: true, addedAllowAnonymous: false };
}
