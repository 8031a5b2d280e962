// The live topic tree (#/topics): the browser subscribes over MQTT 5 on the broker's /mqtt
// WebSocket (anonymous: the test broker has ALLOW_ANONYMOUS "true"); messages published from
// MQTT.js in Node appear with their payload (JSON pretty-printed), QoS, retain flag, MQTT 5
// properties, counts per subtree and a sparkline of the numbers. Screenshot: topics.png.
import { afterAll, describe, expect, it } from "vitest";
import { closeAll, connect, topicBase } from "../e2e/clients";
import { ADMIN_AUTH, useDashboard } from "./harness";

describe("dashboard topic tree", () => {
  const dash = useDashboard();
  afterAll(closeAll);

  it("shows messages from MQTT.js live, with JSON, retain flag, properties, counts and a sparkline", async () => {
    const { page, broker, login, open, shot } = dash();
    const base = topicBase("tree");
    const device = await connect(broker.url, { version: 5, label: "publisher" });
    // Retained before the tree subscribes: it arrives with the retain flag set.
    const config = { interval: 5, units: "C", thresholds: [18, 26] };
    await device.publish(`${base}/sensor/config`, JSON.stringify(config), { qos: 1, retain: true });

    await login();
    await open("#/topics");
    expect(await page.getByTestId("topics-filter").inputValue()).toBe("#");
    await page.getByTestId("topics-filter").fill(`${base}/#`);
    await page.getByTestId("topics-connect").click();
    await page.locator('[data-testid=topics-state][data-state="connected"]').waitFor();
    await page.getByTestId("topics-subscriptions").waitFor();

    const node = (topic: string) => page.locator(`[data-testid=topics-node][data-topic="${topic}"]`);
    await node(`${base}/sensor/config`).waitFor();
    expect(await node(`${base}/sensor/config`).locator("> .topics-row [data-testid=topics-retained]").count()).toBe(1);

    const status = { temperature: 21.5, ok: true, tags: ["a", "b"] };
    await device.publish(`${base}/sensor/status`, JSON.stringify(status), {
      qos: 1,
      properties: {
        contentType: "application/json",
        userProperties: { site: "berlin" },
        responseTopic: `${base}/replies`,
        correlationData: Buffer.from("req-42"),
        messageExpiryInterval: 300,
      },
    });
    for (const v of [3, 1, 4, 1, 5]) await device.publish(`${base}/sensor/temp`, String(v), { qos: 0 });

    // Counts per subtree: 1 retained + 1 JSON + 5 numbers on 3 topics.
    const baseCount = node(base).locator("> .topics-row [data-testid=topics-count]");
    await expect.poll(() => baseCount.textContent(), { timeout: 10_000 }).toBe("7 msg · 3 topics");
    const temp = node(`${base}/sensor/temp`);
    await expect.poll(() => temp.locator("> .topics-row [data-testid=topics-preview]").textContent(), { timeout: 10_000 }).toBe("5");
    expect(await temp.locator("> .topics-row [data-testid=topics-count]").textContent()).toBe("5 msg");
    expect(await temp.locator("> .topics-row [data-testid=topics-qos]").textContent()).toBe("QoS 0");
    expect(await temp.locator("[data-testid=topics-sparkline]").getAttribute("data-points")).toBe("5");
    // A live message is not flagged retained.
    expect(await node(`${base}/sensor/status`).locator("> .topics-row [data-testid=topics-retained]").count()).toBe(0);

    // The detail of the JSON message: pretty-printed, with its MQTT 5 properties.
    await node(`${base}/sensor/status`).locator("> .topics-row .topics-name").click();
    const detail = page.getByTestId("topics-detail");
    expect(await detail.getByTestId("topics-detail-topic").textContent()).toBe(`${base}/sensor/status`);
    expect(await detail.getByTestId("topics-detail-payload").textContent()).toBe(JSON.stringify(status, null, 2));
    expect(await detail.getByTestId("topics-detail-format").textContent()).toMatch(/^JSON/);
    expect(await detail.getByTestId("topics-detail-retain").textContent()).toBe("no");
    expect(await detail.getByTestId("topics-detail-content-type").textContent()).toBe("application/json");
    expect(await detail.getByTestId("topics-detail-response-topic").textContent()).toBe(`${base}/replies`);
    expect(await detail.getByTestId("topics-detail-correlation").textContent()).toBe("req-42");
    expect(await detail.getByTestId("topics-detail-expiry").textContent()).toMatch(/^\d+ s/);
    expect(await detail.getByTestId("topics-detail-user-properties").locator("tbody tr").allTextContents()).toEqual(["siteberlin"]);

    // The retained JSON one.
    await node(`${base}/sensor/config`).locator("> .topics-row .topics-name").click();
    expect(await detail.getByTestId("topics-detail-payload").textContent()).toBe(JSON.stringify(config, null, 2));
    expect(await detail.getByTestId("topics-detail-retain").textContent()).toBe("yes");

    // Collapsing a level hides what is below it.
    await node(`${base}/sensor`).locator("> .topics-row .topics-toggle").click();
    expect(await temp.count()).toBe(0);
    await node(`${base}/sensor`).locator("> .topics-row .topics-toggle").click();
    await temp.waitFor();

    await node(`${base}/sensor/temp`).locator("> .topics-row .topics-name").click();
    await shot("topics");
    await page.getByTestId("topics-disconnect").click();
    await page.locator('[data-testid=topics-state][data-state="closed"]').waitFor();
  });

  it("says which filters the broker refuses ($SYS/# is for admins) and keeps the others", async () => {
    const { page, broker, open } = dash();
    const base = topicBase("refused");
    await open("#/topics");
    await page.getByTestId("topics-filter").fill(`${base}/#, $SYS/#`);
    await page.getByTestId("topics-connect").click();
    await page.locator('[data-testid=topics-state][data-state="connected"]').waitFor();
    const error = page.getByTestId("topics-error");
    await error.waitFor();
    expect(await error.textContent()).toMatch(/\$SYS\/#: Not authorized \(0x87\)/);
    const device = await connect(broker.url, { version: 5 });
    await device.publish(`${base}/x`, "still here");
    await page.locator(`[data-testid=topics-node][data-topic="${base}/x"]`).waitFor();
    await page.getByTestId("topics-disconnect").click();
  });

  it("lets an admin credential watch $SYS/# (presence events), remembered for the tab when asked", async () => {
    const { page, broker, open } = dash();
    const res = await fetch(`${broker.httpUrl}/api/v1/credentials`, {
      method: "POST",
      headers: { ...ADMIN_AUTH, "Content-Type": "application/json" },
      body: JSON.stringify({ username: "dash-admin", password: "dash-admin-password-1", admin: true }),
    });
    expect(res.status, await res.clone().text()).toBeLessThan(300);
    await open("#/topics");
    await page.getByTestId("topics-username").fill("dash-admin");
    await page.getByTestId("topics-password").fill("dash-admin-password-1");
    await page.getByTestId("topics-remember").check();
    await page.getByTestId("topics-filter").fill("$SYS/broker/clients/#");
    await page.getByTestId("topics-connect").click();
    await page.locator('[data-testid=topics-state][data-state="connected"]').waitFor();
    await page.getByTestId("topics-subscriptions").waitFor();
    expect(await page.evaluate(() => JSON.parse(sessionStorage.getItem("edge-mqtt-topics-credentials") ?? "null"))).toEqual({
      username: "dash-admin",
      password: "dash-admin-password-1",
    });
    const device = await connect(broker.url, { version: 5 });
    await page.getByText("Expand all").click();
    const event = page.locator(`[data-testid=topics-node][data-topic="$SYS/broker/clients/${device.clientId}/connected"]`);
    await event.waitFor({ timeout: 15_000 });
    await event.locator("> .topics-row .topics-name").click();
    expect(JSON.parse((await page.getByTestId("topics-detail-payload").textContent()) ?? "")).toMatchObject({ event: "connected", clientId: device.clientId });
    await page.getByTestId("topics-disconnect").click();
    await page.getByTestId("topics-remember").uncheck();
    await page.getByTestId("topics-username").fill("");
    await page.getByTestId("topics-password").fill("");
    expect(await page.evaluate(() => sessionStorage.getItem("edge-mqtt-topics-credentials"))).toBeNull();
  });

  it("refuses a bad filter before connecting", async () => {
    const { page, open } = dash();
    await open("#/topics");
    await page.getByTestId("topics-filter").fill("a/#/b");
    await page.getByTestId("topics-connect").click();
    expect(await page.getByTestId("topics-error").textContent()).toMatch(/Not a valid topic filter/);
    // Not even tried: the state stays what it was (disconnected by the previous test).
    expect(["idle", "closed"]).toContain(await page.getByTestId("topics-state").getAttribute("data-state"));
  });

  it("shows a CONNACK refusal with its reason", async () => {
    const { page, open } = dash();
    await open("#/topics");
    await page.getByTestId("topics-filter").fill("#");
    await page.getByTestId("topics-username").fill("nobody");
    await page.getByTestId("topics-password").fill("wrong-password");
    await page.getByTestId("topics-connect").click();
    await page.locator('[data-testid=topics-state][data-state="refused"]').waitFor({ timeout: 15_000 });
    expect(await page.getByTestId("topics-error").textContent()).toMatch(/refused the connection: .*\(0x8[67]\)/);
    // Nothing kept: "remember for this tab" was not ticked.
    expect(await page.evaluate(() => sessionStorage.getItem("edge-mqtt-topics-credentials"))).toBeNull();
  });
});
