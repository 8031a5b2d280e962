// The dashboard's browser test harness: one broker per test file, started exactly as
// `npm start` starts it (test/e2e/broker.ts), and one Chromium (playwright-core, Debian's
// /usr/bin/chromium or CHROMIUM_PATH) with a fresh context and page. Every test fails if the
// page asked for anything from another host than the broker, or threw an uncaught error.
//
//   const dash = useDashboard();
//   it("lists devices", async () => {
//     const { page, login, open, shot } = dash();
//     await login();
//     await open("#/devices");
//     await shot("devices");
//   });
import { mkdir } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";
import { afterAll, afterEach, beforeAll } from "vitest";
import { startTestBroker, TEST_ADMIN_TOKEN, type TestBroker, type TestBrokerOptions } from "../e2e/broker";

export { ADMIN_AUTH, TEST_ADMIN_TOKEN } from "../e2e/broker";

/** Where shot(name) writes <name>.png (gitignored). */
export const ARTIFACTS_DIR = join(dirname(fileURLToPath(import.meta.url)), "artifacts");

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

export interface Dashboard {
  broker: TestBroker;
  browser: Browser;
  context: BrowserContext;
  page: Page;
  /** `${broker.httpUrl}/dashboard/` */
  baseUrl: string;
  /** Opens the dashboard, enters TEST_ADMIN_TOKEN on the login form (unless logged in already), waits for the navigation. */
  login(): Promise<void>;
  /** Shows `hash` (e.g. "#/devices", "#/device/sensor-1") and waits until its page is shown. */
  open(hash: string): Promise<void>;
  /** Writes a full-page screenshot to test/browser/artifacts/<name>.png. */
  shot(name: string): Promise<void>;
  /** Requests to other hosts (aborted) and uncaught page errors seen so far. */
  problems(): { foreignRequests: string[]; pageErrors: string[] };
}

export interface DashboardOptions {
  /** wrangler.toml [vars] to override for this file's broker. */
  vars?: TestBrokerOptions["vars"];
}

/** The page name a hash shows (the dashboard's router: `#/<page>/...`, default overview). */
function pageOf(hash: string): string {
  const raw = hash.replace(/^#?\/?/, "");
  const first = raw.split("?", 1)[0]!.split("/", 1)[0]!;
  return decodeURIComponent(first) || "overview";
}

/** One broker and one browser page for the calling test file. */
export function useDashboard(options: DashboardOptions = {}): () => Dashboard {
  let dashboard: Dashboard | undefined;
  let broker: TestBroker | undefined;
  let browser: Browser | undefined;
  const foreignRequests: string[] = [];
  const pageErrors: string[] = [];
  let reported = { foreign: 0, errors: 0 };

  beforeAll(async () => {
    [broker, browser] = await Promise.all([
      startTestBroker(options.vars ? { vars: options.vars } : {}),
      chromium.launch({ executablePath: CHROMIUM_PATH, args: ["--no-sandbox"] }),
    ]);
    const b = broker;
    const origin = new URL(b.httpUrl);
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const own = (url: string) => {
      if (/^(data|blob|about):/.test(url)) return true;
      try {
        return new URL(url).host === origin.host;
      } catch {
        return false;
      }
    };
    await context.route("**/*", async (route) => {
      const url = route.request().url();
      if (own(url)) return route.continue();
      foreignRequests.push(url);
      return route.abort("blockedbyclient");
    });
    const page = await context.newPage();
    page.on("pageerror", (err) => pageErrors.push(err.stack ?? String(err)));
    page.on("websocket", (ws) => {
      if (!own(ws.url().replace(/^ws/, "http"))) foreignRequests.push(ws.url());
    });
    const baseUrl = `${b.httpUrl}/dashboard/`;
    const open = async (hash: string) => {
      const target = hash.startsWith("#") ? hash : `#${hash}`;
      if (page.url().startsWith(baseUrl)) {
        await page.evaluate(`location.hash = ${JSON.stringify(target)}`);
      } else {
        await page.goto(baseUrl + target);
      }
      await page.locator(`main[data-page="${pageOf(target)}"]`).waitFor();
    };
    dashboard = {
      broker: b,
      browser,
      context,
      page,
      baseUrl,
      async login() {
        if (!page.url().startsWith(baseUrl)) await page.goto(baseUrl);
        // Already logged in (this tab keeps the token): nothing to do.
        await page.locator("[data-testid=login], [data-testid=nav]").first().waitFor();
        if (await page.getByTestId("nav").isVisible()) return;
        await page.getByTestId("login-token").fill(TEST_ADMIN_TOKEN);
        await page.getByTestId("login-submit").click();
        await page.getByTestId("nav").waitFor();
      },
      open,
      async shot(name: string) {
        await mkdir(ARTIFACTS_DIR, { recursive: true });
        await page.screenshot({ path: join(ARTIFACTS_DIR, `${name}.png`), fullPage: true });
      },
      problems: () => ({ foreignRequests: [...foreignRequests], pageErrors: [...pageErrors] }),
    };
  });

  // Each test answers for what happened during it.
  afterEach(() => {
    const foreign = foreignRequests.slice(reported.foreign);
    const errors = pageErrors.slice(reported.errors);
    reported = { foreign: foreignRequests.length, errors: pageErrors.length };
    const lines = [
      ...foreign.map((u) => `request to another host than the broker: ${u}`),
      ...errors.map((e) => `uncaught page error: ${e}`),
    ];
    if (lines.length > 0) throw new Error(lines.join("\n"));
  });

  afterAll(async () => {
    await browser?.close().catch(() => {});
    await broker?.stop();
  });

  return () => {
    if (!dashboard) throw new Error("dashboard not started (useDashboard's beforeAll failed?)");
    return dashboard;
  };
}
