// The devices pages in Chromium against a broker started as `npm start` starts it: a device
// that connects with MQTT.js is seen online in the list, then offline with its disconnect
// reason; a device's page shows its session, disconnects it (and shows the 409 of a second
// try), and decommissions it after a dry run that lists its retained topics, which are then
// gone from the retained page and the API. Screenshots: devices, device.
import type { Page } from "playwright-core";
import { afterEach, describe, expect, it } from "vitest";
import { closeAll, connect, sleep, uid } from "../e2e/clients";
import { ADMIN_AUTH, useDashboard } from "./harness";

const dash = useDashboard({ vars: { PRESENCE_FLUSH_MS: "100" } });
afterEach(closeAll);

async function loggedIn(): Promise<void> {
  const { page, login } = dash();
  if (!(await page.getByTestId("nav").isVisible().catch(() => false))) await login();
}

/**
 * Clicks `refresh` until `check` holds (presence reaches D1 in batches); fails after 15 s.
 * `check` must answer at once (count a locator): a Playwright read of an element that is not
 * there yet waits for it, 30 s, without the refresh that would bring it.
 */
async function until(page: Page, refresh: string, check: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await page.getByTestId(refresh).click();
    await sleep(300);
  }
}

async function api(path: string, method = "GET"): Promise<{ status: number; body: any }> {
  const res = await fetch(`${dash().broker.httpUrl}/api/v1/${path}`, { method, headers: ADMIN_AUTH });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

describe("devices page", () => {
  it("shows a device online after it connects with MQTT.js, then offline with its reason", async () => {
    await loggedIn();
    const { page, broker, open, shot } = dash();
    const id = uid("dash-dev");
    const dev = await connect(broker.url, { version: 5, clientId: id });
    await open("#/devices");
    await page.getByTestId("devices-prefix").fill(id);
    const row = page.locator(`[data-testid=device-row][data-id="${id}"]`);
    const rowOnline = (online: boolean) => async () => (await page.locator(`[data-testid=device-row][data-id="${id}"][data-online="${online}"]`).count()) > 0;
    await until(page, "devices-refresh", rowOnline(true), `${id} is online in the list`);
    expect(await row.getByTestId("device-status").textContent()).toBe("online");
    expect(await row.locator("td").nth(2).textContent()).toBe("mqtt");
    expect(await row.locator("td").nth(8).textContent()).toBe("5.0");
    expect(await page.getByTestId("devices-auto").isChecked()).toBe(true);
    await shot("devices");

    // Filters: the online device is not among the offline ones.
    await page.getByTestId("devices-status").selectOption("offline");
    await page.getByTestId("devices-empty").waitFor();
    await page.getByTestId("devices-status").selectOption("all");
    await row.waitFor();

    await dev.end();
    await until(page, "devices-refresh", rowOnline(false), `${id} is offline in the list`);
    expect(await row.getByTestId("device-status").textContent()).toBe("offline");
    expect(await row.getByTestId("device-reason").textContent()).toContain("normal");
  });

  it("a device's page: its session, disconnect (then 409), decommission after a dry run; its retained topics are gone", async () => {
    await loggedIn();
    const { page, broker, open, shot } = dash();
    const id = uid("dash-dec");
    const dev = await connect(broker.url, { version: 5, clientId: id, clean: false, properties: { sessionExpiryInterval: 3600 } });
    await dev.subscribe({ [`devices/${id}/cmd`]: { qos: 1 } });
    await dev.publish(`devices/${id}/state`, '{"t":21.5}', { qos: 1, retain: true });
    await dev.publish(`devices/${id}/config`, "v2", { qos: 1, retain: true });

    // Its retained topics, as the retained page shows them before.
    await open("#/retained");
    await page.getByTestId("retained-filter").fill(`devices/${id}/#`);
    await page.getByTestId("retained-apply").click();
    await page.locator(`[data-testid=retained-row][data-topic="devices/${id}/state"]`).waitFor();
    expect(await page.getByTestId("retained-row").count()).toBe(2);

    await open(`#/device/${encodeURIComponent(id)}`);
    const session = page.getByTestId("device-session");
    await session.waitFor();
    expect(await session.textContent()).toContain("yes (/mqtt)");
    expect(await page.getByTestId("device-subscriptions").textContent()).toContain(`devices/${id}/cmd`);
    const online = page.locator("[data-testid=device-online]", { hasText: /^online$/ });
    await until(page, "device-refresh", async () => (await online.count()) > 0, "the record says online");
    await shot("device");

    // Disconnect: confirmed, the client gets DISCONNECT 0x98, the session stays.
    await page.getByTestId("device-disconnect").click();
    const confirm = page.getByTestId("confirm");
    expect(await confirm.textContent()).toContain("session stays");
    await page.getByTestId("confirm-yes").click();
    await page.getByTestId("device-disconnected").waitFor();
    expect(await page.getByTestId("device-disconnected").textContent()).toContain("session kept");
    expect((await dev.waitForDisconnect()).reasonCode).toBe(0x98);
    await dev.waitClosed();

    // A second disconnect: nothing attached, the API's 409 is shown.
    await page.getByTestId("device-disconnect").click();
    await page.getByTestId("confirm-yes").click();
    const refusal = page.getByTestId("device-action-error");
    await refusal.waitFor();
    expect(await refusal.textContent()).toContain("HTTP 409");
    expect(await refusal.textContent()).toContain("no MQTT connection attached");

    // Decommission: the dry run's list first, cancel does nothing, then the real call.
    await page.getByTestId("device-decommission").click();
    const item = page.locator(`[data-testid=decommission-retained][data-filter="devices/${id}/#"]`);
    await item.waitFor();
    expect(await item.getAttribute("data-count")).toBe("2");
    expect(await page.getByTestId("decommission-summary").textContent()).toContain("1 subscriptions");
    await shot("device-decommission");
    await page.getByTestId("confirm-no").click();
    expect((await api(`retained?filter=${encodeURIComponent(`devices/${id}/#`)}`)).body.items).toHaveLength(2);

    await page.getByTestId("device-decommission").click();
    await page.getByTestId("confirm-yes").click();
    const done = page.getByTestId("device-decommissioned");
    await done.waitFor();
    expect(await done.locator(`[data-testid=decommission-retained][data-filter="devices/${id}/#"]`).getAttribute("data-count")).toBe("2");
    await page.getByTestId("device-no-session").waitFor();

    // Gone from the retained page and from the API.
    await open("#/retained");
    await page.getByTestId("retained-filter").fill(`devices/${id}/#`);
    await page.getByTestId("retained-apply").click();
    await page.getByTestId("retained-empty").waitFor();
    expect(await page.getByTestId("retained-row").count()).toBe(0);
    const after = await api(`retained?filter=${encodeURIComponent(`devices/${id}/#`)}`);
    expect(after.status).toBe(200);
    expect(after.body.items).toEqual([]);
    expect((await api(`devices/${encodeURIComponent(id)}`)).body.device.decommissioned_at).not.toBeNull();
  });
});
