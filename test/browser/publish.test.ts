// The publish form (#/publish): a message sent from the form through POST /api/v1/publish
// reaches an MQTT.js subscriber in the test with its QoS and MQTT 5 properties; "no matching
// subscribers" and the API's refusals are shown. Screenshot: publish.png.
import { afterAll, describe, expect, it } from "vitest";
import { closeAll, connect, topicBase } from "../e2e/clients";
import { useDashboard } from "./harness";

describe("dashboard publish form", () => {
  const dash = useDashboard();
  afterAll(closeAll);

  it("publishes from the form to an MQTT.js subscriber, with QoS and MQTT 5 properties", async () => {
    const { page, broker, login, open, shot } = dash();
    const base = topicBase("form");
    const sub = await connect(broker.url, { version: 5, label: "subscriber" });
    await sub.subscribe(`${base}/#`, { qos: 1 });

    await login();
    await open("#/publish");
    const payload = JSON.stringify({ temperature: 22.5, unit: "C" });
    await page.getByTestId("publish-topic").fill(`${base}/gw-1/temperature`);
    await page.getByTestId("publish-payload").fill(payload);
    await page.getByTestId("publish-qos").selectOption("1");
    await page.getByTestId("publish-expiry").fill("120");
    await page.getByTestId("publish-content-type").fill("application/json");
    await page.getByTestId("publish-response-topic").fill(`${base}/replies`);
    await page.getByTestId("publish-correlation").fill("req-7");
    await page.getByTestId("publish-add-user-property").click();
    await page.getByTestId("publish-add-user-property").click();
    await page.getByTestId("publish-user-name").nth(0).fill("site");
    await page.getByTestId("publish-user-value").nth(0).fill("berlin");
    await page.getByTestId("publish-user-name").nth(1).fill("line");
    await page.getByTestId("publish-user-value").nth(1).fill("4");
    await page.getByTestId("publish-submit").click();

    const result = page.getByTestId("publish-result");
    await result.waitFor();
    expect(await result.getAttribute("data-kind")).toBe("ok");
    expect(await result.textContent()).toMatch(/Published to .*gw-1\/temperature/);

    const got = await sub.inbox.waitForTopic(`${base}/gw-1/temperature`, 10_000);
    expect(got.payload.toString()).toBe(payload);
    expect(got.qos).toBe(1);
    expect(got.retain).toBe(false);
    expect(got.properties.contentType).toBe("application/json");
    expect(got.properties.responseTopic).toBe(`${base}/replies`);
    expect(Buffer.from(got.properties.correlationData ?? []).toString()).toBe("req-7");
    expect(got.properties.userProperties).toEqual({ site: "berlin", line: "4" });
    expect(got.properties.messageExpiryInterval).toBeGreaterThan(100);
    expect(got.properties.messageExpiryInterval).toBeLessThanOrEqual(120);
    await shot("publish");
  });

  it("sends a base64 payload as its bytes", async () => {
    const { page, broker, open } = dash();
    const base = topicBase("b64");
    const sub = await connect(broker.url, { version: 5 });
    await sub.subscribe(`${base}/#`);
    await open("#/publish");
    await page.getByTestId("publish-topic").fill(`${base}/bin`);
    await page.getByTestId("publish-payload").fill(Buffer.from([0, 1, 2, 255]).toString("base64"));
    await page.getByTestId("publish-encoding").selectOption("base64");
    await page.getByTestId("publish-qos").selectOption("0");
    // Clear the properties the first test typed (the page keeps its state while shown).
    for (const id of ["publish-expiry", "publish-content-type", "publish-response-topic", "publish-correlation"]) await page.getByTestId(id).fill("");
    await page.getByTestId("publish-submit").click();
    await page.locator('[data-testid=publish-result][data-kind="ok"]').waitFor();
    const got = await sub.inbox.waitForTopic(`${base}/bin`, 10_000);
    expect([...got.payload]).toEqual([0, 1, 2, 255]);
  });

  it('says "no matching subscribers", and keeps a retained message', async () => {
    const { page, open } = dash();
    const base = topicBase("nomatch");
    await open("#/publish");
    await page.getByTestId("publish-topic").fill(`${base}/nobody`);
    await page.getByTestId("publish-encoding").selectOption("plain");
    await page.getByTestId("publish-payload").fill("hello?");
    await page.getByTestId("publish-retain").check();
    await page.getByTestId("publish-submit").click();
    const result = page.locator('[data-testid=publish-result][data-kind="nomatch"]');
    await result.waitFor();
    expect(await result.textContent()).toMatch(/no subscriber matches .*reason code 16.*retained/);
    const retained = await page.evaluate(async (topic) => {
      const res = await fetch(`/api/v1/retained/${topic.split("/").map(encodeURIComponent).join("/")}`, { headers: { Authorization: `Bearer ${sessionStorage.getItem("edge-mqtt-admin-token")}` } });
      return res.status;
    }, `${base}/nobody`);
    expect(retained).toBe(200);
    await page.getByTestId("publish-retain").uncheck();
  });

  it("shows bad input and the API's refusal", async () => {
    const { page, open } = dash();
    await open("#/publish");
    await page.getByTestId("publish-topic").fill("a/#");
    await page.getByTestId("publish-submit").click();
    expect(await page.getByTestId("publish-invalid").textContent()).toMatch(/no wildcards/);

    await page.getByTestId("publish-topic").fill("$SYS/broker/fake");
    await page.getByTestId("publish-submit").click();
    const result = page.locator('[data-testid=publish-result][data-kind="problem"]');
    await result.waitFor();
    expect(await result.textContent()).toMatch(/^Refused403 Forbidden: Topics starting with \$ belong to the broker/);

    await page.getByTestId("publish-topic").fill("ok/topic");
    await page.getByTestId("publish-expiry").fill("-3");
    await page.getByTestId("publish-submit").click();
    expect(await page.getByTestId("publish-invalid").textContent()).toMatch(/expiry/);
  });
});
