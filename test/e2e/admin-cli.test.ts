// The admin command line (scripts/admin.mjs, `npm run admin -- ...`) against a broker started as
// `npm start` starts it: every command whose endpoint exists, tables and --json, errors.
import { spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { nodeBinary, ROOT } from "../../scripts/broker-process.mjs";
import { ADMIN_AUTH, TEST_ADMIN_TOKEN, useBroker } from "./broker";
import { closeAll, connect, sleep, uid } from "./clients";

const broker = useBroker({ vars: { MAX_PUBLISH_RATE: "0", HTTP_PUBLISH_RATE: "0", PRESENCE_FLUSH_MS: "200" } });
afterEach(closeAll);

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI as `npm run admin -- <args>` does (node scripts/admin.mjs), against the test broker. */
function admin(args: string[], { token = TEST_ADMIN_TOKEN, env = {}, input }: { token?: string | null; env?: Record<string, string>; input?: string } = {}): Promise<Run> {
  const full = [...args, "--url", broker().httpUrl, ...(token === null ? [] : ["--token", token])];
  return new Promise((resolve, reject) => {
    const child = spawn(nodeBinary(), [join(ROOT, "scripts", "admin.mjs"), ...full], {
      cwd: ROOT,
      // No ADMIN_TOKEN from the environment unless a test gives one.
      env: { ...process.env, ADMIN_TOKEN: "", EDGE_MQTT_URL: "", ...env },
      // stdin: what the test pipes in (not a terminal), else nothing.
      stdio: ["pipe", "pipe", "pipe"],
    });
    child.stdin.end(input ?? "");
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c) => (stdout += c));
    child.stderr.on("data", (c) => (stderr += c));
    child.on("error", reject);
    child.on("exit", (code) => resolve({ code, stdout, stderr }));
  });
}

async function adminJson<T = any>(args: string[], options?: Parameters<typeof admin>[1]): Promise<T> {
  const r = await admin([...args, "--json"], options);
  if (r.code !== 0) throw new Error(`admin ${args.join(" ")} exited ${r.code}:\n${r.stderr}${r.stdout}`);
  return JSON.parse(r.stdout) as T;
}

describe("admin CLI: usage and errors", () => {
  it("--help lists every command; no command is a usage error (2)", async () => {
    const help = await admin(["--help"]);
    expect(help.code).toBe(0);
    for (const c of [
      "stats", "devices list", "devices decommission", "retained clear", "retained sweep", "keys create", "keys revoke", "publish",
      "credentials add", "credentials list", "credentials delete", "acl add", "acl list", "acl delete",
    ]) {
      expect(help.stdout).toContain(c);
    }
    expect((await admin([])).code).toBe(2);
    const unknown = await admin(["frobnicate"]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/unknown command: frobnicate/);
    const badOption = await admin(["keys", "list", "--filter", "x"]);
    expect(badOption.code).toBe(2);
    expect(badOption.stderr).toMatch(/keys list takes no --filter/);
  });

  it("a refusal prints the problem's title and detail and exits 1", async () => {
    const r = await admin(["stats"], { token: "not-the-admin-token" });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^error: Unauthorized \(401\): The bearer token is not valid\./m);
    const sweep = await admin(["retained", "sweep", "--dry-run"]);
    expect(sweep.code).toBe(1);
    expect(sweep.stderr).toMatch(/Bad Request \(400\).*RETAINED_MAX_AGE/s);
    // With an age it runs (ages take units: 1d = 86400 s).
    const aged = await admin(["retained", "sweep", "--older-than", "1d", "--dry-run"]);
    expect(aged.code, aged.stderr).toBe(0);
    expect(aged.stdout).toMatch(/^\d+ retained message\(s\) older than 86400 s \(dry run: nothing cleared\)$/m);
  });

  it("no reachable broker: says so, exit 1", async () => {
    const r = await new Promise<Run>((resolve) => {
      const child = spawn(nodeBinary(), [join(ROOT, "scripts", "admin.mjs"), "stats", "--url", "http://127.0.0.1:9", "--token", "x"], { cwd: ROOT });
      let stderr = "";
      child.stderr.on("data", (c) => (stderr += c));
      child.on("exit", (code) => resolve({ code, stdout: "", stderr }));
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/cannot reach the broker at http:\/\/127\.0\.0\.1:9/);
  });

  it("the token can come from ADMIN_TOKEN in the environment", async () => {
    const r = await admin(["keys", "list"], { token: null, env: { ADMIN_TOKEN: TEST_ADMIN_TOKEN } });
    expect(r.code, r.stderr).toBe(0);
  });
});

describe("admin CLI: stats", () => {
  it("a table for people, the API's JSON with --json", async () => {
    const table = await admin(["stats"]);
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout).toMatch(/^uptime:\s+\d+ s$/m);
    expect(table.stdout).toMatch(/^retained messages:/m);
    const json = await adminJson(["stats"]);
    expect(json).toHaveProperty("uptime_seconds");
    expect(json).toHaveProperty("messages.received.total");
  });
});

describe("admin CLI: keys", () => {
  it("create (shown once; the key publishes in its scope), list (never the secret), revoke", async () => {
    const name = uid("cli-key");
    const created = await adminJson(["keys", "create", "--name", name, "--scope", "cli/keys/#", "--scope", "cli/other/+"]);
    expect(created.key).toBeTruthy();
    expect(created.scopes).toEqual(["cli/keys/#", "cli/other/+"]);
    const publishWith = (key: string) =>
      fetch(`${broker().httpUrl}/api/v1/publish`, {
        method: "POST",
        headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
        body: JSON.stringify({ topic: "cli/keys/a", payload: "x" }),
      });
    expect((await publishWith(created.key)).status).toBeLessThan(300);

    const table = await admin(["keys", "list"]);
    expect(table.code).toBe(0);
    const line = table.stdout.split("\n").find((l) => l.includes(name)) ?? "";
    expect(line).toContain(created.id);
    expect(line).toContain("cli/keys/#, cli/other/+");
    expect(table.stdout).not.toContain(created.key); // never the secret again
    expect(table.stdout.split("\n")[0]).toMatch(/^ID\s+NAME\s+SCOPES\s+DEVICE\s+CREATED AT\s+LAST USED\s+REVOKED AT$/);

    const revoked = await admin(["keys", "revoke", created.id]);
    expect(revoked.code, revoked.stderr).toBe(0);
    expect(revoked.stdout).toMatch(new RegExp(`revoked key ${created.id}`));
    const listed = await adminJson<{ keys: { id: string; revoked_at: string | null }[] }>(["keys", "list"]);
    expect(listed.keys.find((k) => k.id === created.id)?.revoked_at).toBeTruthy();
    const missing = await admin(["keys", "revoke", "no-such-key"]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/Not Found \(404\)/);
  });

  it("keys create without --scope is a usage error, before any request", async () => {
    const r = await admin(["keys", "create", "--name", "x"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--scope/);
  });
});

describe("admin CLI: publish and retained", () => {
  it("publish reaches an MQTT subscriber; retained list/get/delete/clear see what was retained", async () => {
    const base = uid("cli-ret");
    const sub = await connect(broker().url, { version: 5 });
    await sub.subscribe(`${base}/#`, { qos: 1 });
    for (let i = 0; i < 5; i++) {
      const r = await admin(["publish", `${base}/t${i}`, `value ${i}`, "--qos", "1", "--retain"]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/^published to /);
    }
    const got = await sub.inbox.waitFor(5);
    expect(got.map((m) => m.payload.toString()).sort()).toEqual([0, 1, 2, 3, 4].map((i) => `value ${i}`));

    // Every page, here 2 messages at a time, with the progress line on stderr.
    const pages = await admin(["retained", "list", "--filter", `${base}/#`, "--page-size", "2", "--json"], { env: { EDGE_MQTT_PROGRESS: "1" } });
    expect(pages.code, pages.stderr).toBe(0);
    const listed = JSON.parse(pages.stdout) as { items: { topic: string; payload_text: string; size: number }[] };
    expect(listed.items.map((m) => m.topic).sort()).toEqual([0, 1, 2, 3, 4].map((i) => `${base}/t${i}`));
    expect(pages.stderr).toMatch(/retained: 5 item\(s\), \d+ page\(s\)/);

    const table = await admin(["retained", "list", "--filter", `${base}/#`]);
    expect(table.stdout.split("\n")[0]).toMatch(/^TOPIC\s+SIZE\s+QOS\s+STORED AT\s+EXPIRES AT\s+PUBLISHER\s+PAYLOAD$/);
    expect(table.stdout).toMatch(new RegExp(`^${base}/t3\\s+7\\s+1\\s+.*value 3$`, "m"));
    expect(table.stdout).toContain("5 retained message(s)");

    const one = await adminJson(["retained", "get", `${base}/t2`]);
    expect(one).toMatchObject({ topic: `${base}/t2`, payload_text: "value 2", size: 7, qos: 1 });

    expect((await admin(["retained", "delete", `${base}/t2`])).code).toBe(0);
    const gone = await admin(["retained", "get", `${base}/t2`]);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toMatch(/Not Found \(404\)/);

    const dry = await admin(["retained", "clear", "--filter", `${base}/#`, "--dry-run"]);
    expect(dry.stdout).toMatch(/4 retained message\(s\) match .* \(dry run: nothing cleared\)/);
    // Without a terminal a bulk delete needs --yes, and nothing is cleared without it.
    const unconfirmed = await admin(["retained", "clear", "--filter", `${base}/#`]);
    expect(unconfirmed.code).toBe(2);
    expect(unconfirmed.stderr).toMatch(/Clear 4 retained message\(s\).*--yes/s);
    const cleared = await admin(["retained", "clear", "--filter", `${base}/#`, "--yes"]);
    expect(cleared.code, cleared.stderr).toBe(0);
    expect(cleared.stdout).toMatch(/cleared 4 of 4 retained message\(s\)/);
    expect((await adminJson<{ items: unknown[] }>(["retained", "list", "--filter", `${base}/#`])).items).toEqual([]);
  });

  it("publish --bulk sends a file in chunks; running it again publishes nothing twice", async () => {
    const base = uid("cli-bulk");
    const sub = await connect(broker().url, { version: 5 });
    await sub.subscribe(`${base}/#`, { qos: 1 });
    const dir = await mkdtemp(join(tmpdir(), "edge-mqtt-cli-"));
    dirs.push(dir);
    const file = join(dir, "batch.json");
    await writeFile(file, JSON.stringify(Array.from({ length: 7 }, (_, i) => ({ topic: `${base}/m${i}`, payload: `p${i}`, qos: 1 }))));
    const first = await admin(["publish", "--bulk", file, "--chunk", "3"], { env: { EDGE_MQTT_PROGRESS: "1" } });
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toMatch(/published 7 message\(s\) in 3 request\(s\)/);
    expect(first.stderr).toContain("[##############################] 7/7 message(s)");
    await sub.inbox.waitFor(7);
    const again = await admin(["publish", "--bulk", file, "--chunk", "3"]);
    expect(again.code, again.stderr).toBe(0);
    await sleep(1_000);
    expect(sub.inbox.messages.length).toBe(7);
  });
});

describe("admin CLI: devices", () => {
  it("list (with --status and --prefix), show, disconnect, decommission --dry-run", async () => {
    const prefix = uid("cli-dev");
    const id = `${prefix}-a`;
    const conn = await connect(broker().url, { version: 5, clientId: id, clean: false, properties: { sessionExpiryInterval: 3600 } });
    await conn.subscribe("cli/devices/+/cmd", { qos: 1 });

    // Presence reaches D1 within PRESENCE_FLUSH_MS (200 ms here).
    let online: { items: { client_id: string; online: boolean; remote_address: string | null }[] } = { items: [] };
    for (let i = 0; i < 50 && online.items.length !== 1; i++) {
      online = await adminJson(["devices", "list", "--status", "online", "--prefix", prefix]);
      if (online.items.length !== 1) await sleep(200);
    }
    expect(online.items.map((d) => d.client_id)).toEqual([id]);

    const table = await admin(["devices", "list", "--prefix", prefix]);
    expect(table.stdout.split("\n")[0]).toMatch(/^CLIENT ID\s+STATUS\s+TRANSPORT\s+CONNECTED AT\s+LAST SEEN\s+DISCONNECT REASON\s+ADDRESS\s+MQTT$/);
    expect(table.stdout).toMatch(new RegExp(`^${id}\\s+online\\s+mqtt\\s+`, "m"));

    const shown = await admin(["devices", "show", id]);
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toMatch(/^status:\s+online$/m);
    expect(shown.stdout).toMatch(/^cli\/devices\/\+\/cmd\s+1\s+/m);

    const disconnected = await admin(["devices", "disconnect", id]);
    expect(disconnected.code, disconnected.stderr).toBe(0);
    expect(disconnected.stdout).toMatch(new RegExp(`^disconnected ${id}`));
    await conn.waitClosed(10_000);

    const dry = await adminJson(["devices", "decommission", id, "--dry-run", "--retained", `cli/devices/${id}/#`]);
    expect(dry).toMatchObject({ client_id: id, dry_run: true, decommissioned_at: null });
    expect(dry.retained_cleared).toHaveProperty(`cli/devices/${id}/#`);

    const done = await admin(["devices", "decommission", id, "--yes"]);
    expect(done.code, done.stderr).toBe(0);
    expect(done.stdout).toMatch(new RegExp(`^decommissioned ${id}`));
    const after = await fetch(`${broker().httpUrl}/api/v1/devices/${encodeURIComponent(id)}`, { headers: ADMIN_AUTH });
    expect(((await after.json()) as { device: { decommissioned_at: string | null } }).device.decommissioned_at).toBeTruthy();
  });
});

describe("admin CLI: credentials and ACL rules", () => {
  it("credentials add (password from stdin or --password), list, delete; the password works for CONNECT", async () => {
    const username = uid("cli-user");
    const added = await admin(["credentials", "add", username], { input: "piped password\n" });
    expect(added.code, added.stderr).toBe(0);
    expect(added.stdout).toMatch(new RegExp(`^user ${username} stored \\(pbkdf2-sha256:\\d+\\)$`, "m"));
    expect(added.stdout + added.stderr).not.toContain("piped password");
    // The trailing newline is not part of the password.
    const ok = await connect(broker().url, { version: 5, username, password: "piped password" });
    await ok.end();
    await expect(connect(broker().url, { version: 5, username, password: "piped password\n" })).rejects.toMatchObject({ code: 0x86 });

    const replaced = await adminJson(["credentials", "add", username, "--password", "another password", "--admin"]);
    expect(replaced).toMatchObject({ username, admin: true });
    const table = await admin(["credentials", "list"]);
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout.split("\n")[0]).toMatch(/^USERNAME\s+ADMIN\s+ALGORITHM\s+CREATED AT$/);
    expect(table.stdout).toMatch(new RegExp(`^${username}\\s+yes\\s+pbkdf2-sha256:`, "m"));
    expect(table.stdout).not.toContain("another password");
    const listed = await adminJson<{ items: Array<{ username: string }> }>(["credentials", "list", "--page-size", "1"]);
    expect(listed.items.map((c) => c.username)).toContain(username);

    const deleted = await admin(["credentials", "delete", username]);
    expect(deleted.code, deleted.stderr).toBe(0);
    expect(deleted.stdout).toMatch(new RegExp(`^deleted user ${username}`));
    const again = await admin(["credentials", "delete", username]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/Not Found \(404\)/);
  });

  it("credentials add refuses what the API refuses, and needs a password", async () => {
    const short = await admin(["credentials", "add", uid("cli-short"), "--password", "short"]);
    expect(short.code).toBe(1);
    expect(short.stderr).toMatch(/Bad Request \(400\).*password/s);
    const none = await admin(["credentials", "add", uid("cli-none")], { input: "" });
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/no password/);
  });

  it("acl add (--allow / --deny), list (table, --json, --username), delete", async () => {
    const username = uid("cli-acl");
    const allow = await adminJson(["acl", "add", "--topic", "cli/%u/#", "--action", "all", "--allow", "--username", username]);
    expect(allow).toMatchObject({ id: expect.any(Number), username, clientid: null, topic: "cli/%u/#", action: "all", allow: true });
    const deny = await admin(["acl", "add", "--topic", "cli/secret/#", "--action", "subscribe", "--deny", "--username", username, "--clientid", "c-1"]);
    expect(deny.code, deny.stderr).toBe(0);
    expect(deny.stdout).toMatch(new RegExp(`^rule \\d+: deny subscribe cli/secret/# for user ${username}, client c-1$`, "m"));

    const table = await admin(["acl", "list", "--username", username]);
    expect(table.code, table.stderr).toBe(0);
    const lines = table.stdout.split("\n");
    expect(lines[0]).toMatch(/^ID\s+DECISION\s+ACTION\s+TOPIC\s+USERNAME\s+CLIENT ID\s+CREATED AT$/);
    expect(lines[1]).toMatch(new RegExp(`^${allow.id}\\s+allow\\s+all\\s+cli/%u/#\\s+${username}\\s+\\(any\\)`));
    expect(lines[2]).toMatch(/deny\s+subscribe\s+cli\/secret\/#/);
    expect(table.stdout).toContain("2 rule(s)");
    const json = await adminJson<{ items: Array<{ id: number }> }>(["acl", "list", "--username", username, "--page-size", "1"]);
    expect(json.items).toHaveLength(2);

    for (const { id } of json.items) expect((await admin(["acl", "delete", String(id)])).code).toBe(0);
    expect((await adminJson<{ items: unknown[] }>(["acl", "list", "--username", username])).items).toEqual([]);
    const missing = await admin(["acl", "delete", String(allow.id)]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/Not Found \(404\)/);
  });

  it("acl usage errors (2) before any request; an invalid rule is the API's 400 (1)", async () => {
    const neither = await admin(["acl", "add", "--topic", "a", "--action", "all"]);
    expect(neither.code).toBe(2);
    expect(neither.stderr).toMatch(/--allow and --deny/);
    const both = await admin(["acl", "add", "--topic", "a", "--action", "all", "--allow", "--deny"]);
    expect(both.code).toBe(2);
    expect((await admin(["acl", "add", "--topic", "a", "--action", "read", "--allow"])).code).toBe(2);
    expect((await admin(["acl", "add", "--action", "all", "--allow"])).code).toBe(2);
    expect((await admin(["acl", "delete", "x"])).code).toBe(2);
    const invalid = await admin(["acl", "add", "--topic", "a/#/b", "--action", "all", "--allow"]);
    expect(invalid.code).toBe(1);
    expect(invalid.stderr).toMatch(/Bad Request \(400\)/);
  });
});
