// The retained page in Chromium against a broker started as `npm start` starts it: messages
// retained with MQTT.js are listed under a filter, inspected (JSON pretty-printed, text, bytes
// as hex), deleted one by one and by filter (a dry-run count first), bad input is shown as the
// API refuses it, and the stale-sweep dry run shows its count. Screenshot: retained.
import { afterEach, describe, expect, it } from "vitest";
import { closeAll, connect, sleep, uid } from "../e2e/clients";
import { ADMIN_AUTH, useDashboard } from "./harness";

// RETAINED_MAX_AGE 0 (the default, said here): the sweep dry run needs an age.
const dash = useDashboard({ vars: { RETAINED_MAX_AGE: "0" } });
afterEach(closeAll);

async function api(path: string): Promise<{ status: number; body: any }> {
  const res = await fetch(`${dash().broker.httpUrl}/api/v1/${path}`, { headers: ADMIN_AUTH });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

describe("retained page", () => {
  it("lists, inspects, deletes one and deletes by filter", async () => {
    const { page, broker, login, open, shot } = dash();
    const base = uid("rt");
    const pub = await connect(broker.url, { version: 5 });
    await pub.publish(`${base}/json`, '{"t":21.5,"ok":true}', { qos: 1, retain: true, properties: { contentType: "application/json", userProperties: { unit: "C" } } });
    await pub.publish(`${base}/text`, "hello", { qos: 1, retain: true });
    await pub.publish(`${base}/bytes`, Buffer.from([0x00, 0x01, 0x02, 0xff]), { qos: 1, retain: true });
    await pub.publish(`${base}/sub/one`, "one", { qos: 1, retain: true, properties: { messageExpiryInterval: 3600 } });

    await login();
    await open("#/retained");
    await page.getByTestId("retained-filter").fill(`${base}/#`);
    await page.getByTestId("retained-apply").click();
    const row = (topic: string) => page.locator(`[data-testid=retained-row][data-topic="${topic}"]`);
    await row(`${base}/sub/one`).waitFor();
    expect(await page.getByTestId("retained-row").count()).toBe(4);
    expect(await row(`${base}/text`).textContent()).toContain("5 B");
    // Expires in an hour: "in 1 h" while less than half a second has passed, "in 59 min" after.
    expect(await row(`${base}/sub/one`).textContent()).toMatch(/in (1 h|59 min)/);

    // Inspect: JSON pretty-printed with its properties; bytes that are not UTF-8 as hex.
    await row(`${base}/json`).getByTestId("retained-inspect").click();
    const detail = page.getByTestId("retained-detail");
    await page.locator(`[data-testid=retained-detail][data-topic="${base}/json"]`).waitFor();
    expect(await page.getByTestId("payload").textContent()).toBe('{\n  "t": 21.5,\n  "ok": true\n}');
    expect(await detail.textContent()).toContain("application/json");
    expect(await detail.textContent()).toContain("unit = C");
    await shot("retained");
    await page.getByTestId("payload-hex-mode").check();
    expect(await page.getByTestId("payload").textContent()).toContain("7b 22 74 22");

    await row(`${base}/bytes`).getByTestId("retained-inspect").click();
    await page.locator(`[data-testid=retained-detail][data-topic="${base}/bytes"]`).waitFor();
    expect(await page.getByTestId("payload").getAttribute("data-mode")).toBe("hex");
    expect(await page.getByTestId("payload").textContent()).toContain("00 01 02 ff");
    expect(await page.getByTestId("payload-text-mode").isDisabled()).toBe(true);

    // Delete one: confirmed, gone from the list and the API.
    await row(`${base}/text`).getByTestId("retained-delete").click();
    expect(await page.getByTestId("confirm").textContent()).toContain(`${base}/text`);
    await page.getByTestId("confirm-yes").click();
    await page.getByTestId("retained-notice").waitFor();
    await row(`${base}/text`).waitFor({ state: "detached" });
    expect(await page.getByTestId("retained-row").count()).toBe(3);
    expect((await api(`retained/${base}/text`)).status).toBe(404);

    // Delete by filter: the dry run's count in the confirmation, cancel keeps them, then delete.
    await page.getByTestId("retained-delete-filter").click();
    expect(await page.getByTestId("retained-dry-run").getAttribute("data-matched")).toBe("3");
    await page.getByTestId("confirm-no").click();
    await page.getByTestId("retained-filter").fill(`${base}/sub/#`);
    await page.getByTestId("retained-apply").click();
    await row(`${base}/json`).waitFor({ state: "detached" });
    await page.getByTestId("retained-delete-filter").click();
    expect(await page.getByTestId("retained-dry-run").getAttribute("data-matched")).toBe("1");
    await page.getByTestId("confirm-yes").click();
    await page.getByTestId("retained-empty").waitFor();
    expect(await page.getByTestId("retained-notice").textContent()).toContain("Deleted 1 retained message");
    expect((await api(`retained?filter=${encodeURIComponent(`${base}/#`)}`)).body.items.map((m: any) => m.topic).sort()).toEqual([`${base}/bytes`, `${base}/json`]);
  });

  it("shows the API's refusal of a bad filter, and the stale-sweep dry run", async () => {
    const { page, broker, open } = dash();
    await open("#/retained");
    await page.getByTestId("retained-filter").fill("a/#/b");
    await page.getByTestId("retained-apply").click();
    const error = page.getByTestId("error");
    await error.waitFor();
    expect(await error.textContent()).toContain("not a valid topic filter");
    await page.getByTestId("retained-older").fill("ten");
    await page.getByTestId("retained-apply").click();
    await page.getByText('Older than: give a whole number of seconds (0 or more), not "ten".').waitFor();

    // RETAINED_MAX_AGE is 0 here: the sweep needs an age, and says so.
    await page.getByTestId("sweep-dry-run").click();
    expect(await page.getByTestId("sweep-error").textContent()).toContain("RETAINED_MAX_AGE");

    const base = uid("sweep");
    const pub = await connect(broker.url, { version: 5 });
    await pub.publish(`${base}/a`, "old", { qos: 1, retain: true });
    await sleep(2100);
    await page.getByTestId("sweep-age").fill("2");
    await page.getByTestId("sweep-dry-run").click();
    const result = page.getByTestId("sweep-result");
    await result.waitFor();
    expect(Number(await result.getAttribute("data-matched"))).toBeGreaterThanOrEqual(1);
    expect(await result.textContent()).toContain("nothing deleted");
    expect((await api(`retained/${base}/a`)).status).toBe(200);
  });
});
