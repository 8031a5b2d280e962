// examples/browser: the page served by its own serve.mjs over https (the local CA's server
// certificate, as `npm start -- --tls` makes it), in Debian's Chromium (playwright-core), talking
// MQTT over wss:// to a broker started as `npm start -- --tls` starts it. Chromium trusts that
// one certificate for real: its SPKI hash is passed with --ignore-certificate-errors-spki-list
// (not a blanket ignore; a certificate from another CA is still refused, tested below).
// An MQTT.js client in Node publishes -> the page lists it; the page publishes -> Node gets it.
import { spawn, type ChildProcess } from "node:child_process";
import { createHash, X509Certificate } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { request as httpsRequest } from "node:https";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium, type Browser, type Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { ensureTlsFiles } from "../../scripts/tls.mjs";
import { ADMIN_AUTH, startTestBroker, type TestBroker } from "../e2e/broker";
import { closeAll, connect, topicBase } from "../e2e/clients";
import { ARTIFACTS_DIR, CHROMIUM_PATH } from "./harness";

const SERVE = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "examples", "browser", "serve.mjs");

/** base64 of SHA-256 over the certificate's SubjectPublicKeyInfo (DER): what Chromium's flag takes. */
function spkiHash(pem: string): string {
  const spki = new X509Certificate(pem).publicKey.export({ type: "spki", format: "der" });
  return createHash("sha256").update(spki).digest("base64");
}

/** One https request trusting only `ca` (Node's fetch has no per-request CA). */
function httpsCall(url: string, ca: string, init: { method?: string; headers?: Record<string, string>; body?: string } = {}) {
  return new Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }>((resolve, reject) => {
    const req = httpsRequest(url, { method: init.method ?? "GET", headers: init.headers ?? {}, ca }, (res) => {
      res.toArray().then((chunks) => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }), reject);
    });
    req.on("error", reject);
    req.end(init.body);
  });
}

/** Starts serve.mjs; resolves with the URL it prints once listening. */
async function serve(args: string[]): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(process.execPath, [SERVE, "--port", "0", ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve.mjs did not start: ${out}`)), 10_000);
    const onData = (chunk: Buffer) => {
      out += chunk.toString();
      const m = /serving (\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", onData);
    child.on("exit", (code) => reject(new Error(`serve.mjs exited ${code}: ${out}`)));
  });
  return { url, child };
}

describe("examples/browser", () => {
  let broker: TestBroker;
  let browser: Browser;
  let page: Page;
  let site: { url: string; child: ChildProcess };
  let caPem: string;
  const foreign: string[] = [];
  /** Hosts the page may reach: its own server and the broker (no CDN). */
  const allowed = new Set<string>();
  const pageErrors: string[] = [];

  beforeAll(async () => {
    broker = await startTestBroker({ tls: true });
    const tlsDir = join(broker.persistTo, "tls"); // scripts/tls.mjs's files, as under .wrangler/state/tls
    const certFile = join(tlsDir, "server.pem");
    caPem = await readFile(broker.caFile!, "utf8");
    site = await serve(["--cert", certFile, "--key", join(tlsDir, "server-key.pem")]);
    browser = await chromium.launch({
      executablePath: CHROMIUM_PATH,
      args: ["--no-sandbox", `--ignore-certificate-errors-spki-list=${spkiHash(await readFile(certFile, "utf8"))}`],
    });
    const context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
    // Nothing may come from elsewhere than the page's server and the broker (no CDN).
    allowed.add(new URL(site.url).host).add(new URL(broker.httpUrl).host);
    await context.route("**/*", async (route) => {
      const url = new URL(route.request().url());
      if (allowed.has(url.host)) return route.continue();
      foreign.push(url.href);
      return route.abort("blockedbyclient");
    });
    page = await context.newPage();
    page.on("pageerror", (err) => pageErrors.push(err.stack ?? String(err)));
    page.on("websocket", (ws) => {
      if (!allowed.has(new URL(ws.url()).host)) foreign.push(ws.url());
    });
  });

  afterEach(async () => {
    await closeAll();
    expect(foreign, "requests to other hosts").toEqual([]);
    expect(pageErrors, "uncaught page errors").toEqual([]);
  });

  afterAll(async () => {
    await browser?.close().catch(() => {});
    site?.child.kill();
    await broker?.stop();
  });

  it("serves MQTT.js from node_modules and nothing else", async () => {
    // The page's certificate is the broker's (signed by the local CA), so Node trusts that CA.
    const res = await httpsCall(`${site.url}vendor/mqtt.esm.js`, caPem);
    expect(res.status).toBe(200);
    expect(res.headers["content-type"]).toMatch(/javascript/);
    expect(res.body.length).toBeGreaterThan(100_000);
    expect(res.body.toString("utf8", res.body.length - 4096)).toContain("export default");
    expect((await httpsCall(`${site.url}serve.mjs`, caPem)).status).toBe(404);
    expect((await httpsCall(`${site.url}..%2Fpackage.json`, caPem)).status).toBe(404);
  });

  it("connects over wss with a user name and password; Node -> page and page -> Node", async () => {
    const base = topicBase("page");
    const user = { username: "browser-user", password: "browser-password-1" };
    const made = await httpsCall(`${broker.httpUrl}/api/v1/credentials`, caPem, {
      method: "POST",
      headers: { ...ADMIN_AUTH, "Content-Type": "application/json" },
      body: JSON.stringify(user),
    });
    expect([200, 201], made.body.toString()).toContain(made.status);
    await page.goto(`${site.url}?broker=${encodeURIComponent(broker.url)}`);
    expect(await page.getByTestId("url").inputValue()).toBe(broker.url);
    expect(broker.url).toMatch(/^wss:\/\//);

    await page.getByTestId("username").fill(user.username);
    await page.getByTestId("password").fill(user.password);
    await page.getByTestId("connect").click();
    await page.locator('[data-testid=status][data-state="connected"]').waitFor({ timeout: 15_000 });

    await page.getByTestId("filter").fill(`${base}/#`);
    await page.getByTestId("subscribe").click();
    await page.locator(`[data-testid=status][data-subscribed="${base}/#"]`).waitFor();

    // Node -> page.
    const node = await connect(broker.url, { version: 5, ca: caPem } as never);
    await node.subscribe(`${base}/from-page`, { qos: 1 });
    await node.client.publishAsync(`${base}/from-node`, "21.5 <b>not html</b>", { qos: 1 });
    const line = page.locator(`[data-testid=messages] li[data-topic="${base}/from-node"]`);
    await line.waitFor({ timeout: 10_000 });
    expect(await line.locator(".payload").textContent()).toBe("21.5 <b>not html</b>");
    expect(await line.locator("b").count()).toBe(0); // shown as text, not markup

    // Page -> Node.
    await page.getByTestId("topic").fill(`${base}/from-page`);
    await page.getByTestId("payload").fill("hello from chromium");
    await page.getByTestId("pub-qos").selectOption("1");
    await page.getByTestId("publish").click();
    const got = await node.inbox.waitForTopic(`${base}/from-page`, 10_000);
    expect(got.payload.toString()).toBe("hello from chromium");
    expect(got.qos).toBe(1);
    // The page is subscribed to its own topic's filter too: it lists its own message.
    await page.locator(`[data-testid=messages] li[data-topic="${base}/from-page"]`).waitFor();
    await page.screenshot({ path: join(ARTIFACTS_DIR, "examples-browser.png"), fullPage: true });
  });

  it("shows a refused password as an error and stops retrying", async () => {
    await page.goto(`${site.url}?broker=${encodeURIComponent(broker.url)}`);
    await page.getByTestId("username").fill("browser-user");
    await page.getByTestId("password").fill("wrong-password");
    await page.getByTestId("connect").click();
    const status = page.locator('[data-testid=status][data-state="error"]');
    await status.waitFor({ timeout: 10_000 });
    expect(await status.textContent()).toMatch(/error/i);
    // No reconnect loop: the page's reconnectPeriod is 2 s, so a retry would open a socket.
    let sockets = 0;
    const count = () => (sockets += 1);
    page.on("websocket", count);
    await page.waitForTimeout(2_600);
    page.off("websocket", count);
    expect(sockets).toBe(0);
    expect(await page.getByTestId("status").getAttribute("data-state")).toBe("error");
  });

  it("still refuses a certificate it was not told to trust (the flag is not a blanket ignore)", async () => {
    const otherDir = await mkdtemp(join(tmpdir(), "edge-mqtt-other-ca-"));
    try {
      const other = await ensureTlsFiles(otherDir); // a second, unrelated local CA and server certificate
      const stranger = await serve(["--cert", other.certFile, "--key", other.keyFile]);
      allowed.add(new URL(stranger.url).host);
      try {
        const err = await page.goto(stranger.url).then(() => undefined, (e: unknown) => e);
        expect(String(err)).toMatch(/ERR_CERT_AUTHORITY_INVALID|ERR_CERT/);
      } finally {
        stranger.child.kill();
      }
    } finally {
      await rm(otherDir, { recursive: true, force: true });
    }
  });
});
