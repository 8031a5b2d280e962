// The dashboard's shell: the login gate (a wrong token is refused and stored nowhere), every
// page of the navigation (a screenshot each, test/browser/artifacts/<page>.png), a 401 later
// on returning to the login page, and logging out.
import { describe, expect, it } from "vitest";
import { TEST_ADMIN_TOKEN, useDashboard } from "./harness";

const TOKEN_KEY = "edge-mqtt-admin-token";

describe("dashboard shell", () => {
  const dash = useDashboard();

  /** Where the page keeps anything: the token's sessionStorage entry, localStorage, cookies. */
  const stored = () =>
    dash().page.evaluate<{ session: string | null; local: number; cookie: string }>(
      `({ session: sessionStorage.getItem(${JSON.stringify(TOKEN_KEY)}), local: localStorage.length, cookie: document.cookie })`,
    );

  it("refuse a wrong token", async () => {
    const { page, baseUrl } = dash();
    await page.goto(baseUrl);
    await page.getByTestId("login-token").fill("not-the-admin-token");
    await page.getByTestId("login-submit").click();
    const error = page.getByTestId("login-error");
    await error.waitFor();
    expect(await error.textContent()).toMatch(/refused/i);
    expect(await stored()).toEqual({ session: null, local: 0, cookie: "" });
    expect(await page.getByTestId("nav").count()).toBe(0);
  });

  it("logs in with the admin token, kept in sessionStorage only", async () => {
    const { page, login } = dash();
    await login();
    expect(await stored()).toEqual({ session: TEST_ADMIN_TOKEN, local: 0, cookie: "" });
    expect(page.url()).not.toContain(TEST_ADMIN_TOKEN);
    await page.locator('main[data-page="overview"]').waitFor();
  });

  it("shows every page of the navigation", async () => {
    const { page, open, shot } = dash();
    const names = await page.locator("[data-testid=nav] a[data-page]").evaluateAll((as) => as.map((a) => a.getAttribute("data-page")!));
    expect(names).toEqual(["overview", "devices", "topics", "retained", "publish", "keys", "credentials", "acl"]);
    for (const name of names) {
      await page.getByTestId(`nav-${name}`).click();
      await page.locator(`main[data-page="${name}"]`).waitFor();
      expect(await page.getByTestId(`nav-${name}`).getAttribute("aria-current")).toBe("page");
      // Let the page's first API answers arrive before the picture.
      await page.waitForLoadState("networkidle").catch(() => {});
      await shot(name);
    }
    await open("#/overview");
    expect(page.url()).not.toContain(TEST_ADMIN_TOKEN);
  });

  it("returns to the login page when the API later refuses the token (401)", async () => {
    const { page, open, login } = dash();
    // The token changed on the broker's side since this tab logged in: the next API call gets a 401.
    await page.evaluate(`sessionStorage.setItem(${JSON.stringify(TOKEN_KEY)}, "a-token-that-was-changed")`);
    // The overview polls the API every 2 s: its next call is refused.
    await open("#/overview");
    await page.getByTestId("login").waitFor();
    expect(await page.getByTestId("login-reason").textContent()).toMatch(/401/);
    expect((await stored()).session).toBeNull();
    await login();
  });

  it("logs out", async () => {
    const { page } = dash();
    await page.getByTestId("logout").click();
    await page.getByTestId("login").waitFor();
    expect((await stored()).session).toBeNull();
    await page.reload();
    await page.getByTestId("login").waitFor();
  });
});
