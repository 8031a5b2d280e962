// The overview page follows the broker: after MQTT.js traffic (test/e2e/clients.ts) its
// counters, its live chart of messages per second, the retained alert and the refused
// connections all change, polled every 2 s. The screenshot is docs/dashboard-overview.png's source.
import { afterAll, describe, expect, it } from "vitest";
import { createCredential } from "../e2e/broker";
import { closeAll, connect, sleep, uid } from "../e2e/clients";
import { useDashboard } from "./harness";

const POLL = { timeout: 30_000, interval: 500 };

describe("overview page", () => {
  // A low retained threshold, so four retained messages raise the alert; $SYS traffic off so
  // the chart shows only this test's messages.
  const dash = useDashboard({ vars: { RETAINED_ALERT_THRESHOLD: "3", SYS_INTERVAL: "0" } });
  afterAll(closeAll);

  const text = async (testid: string) => ((await dash().page.getByTestId(testid).textContent()) ?? "").trim();
  const number = async (testid: string) => Number((await text(testid)).replace(/[^\d.]/g, "") || "NaN");

  it("shows the counters, the chart, the retained alert and refused connections as traffic happens", async () => {
    const { page, login, open, broker, shot } = dash();
    await login();
    await open("#/overview");
    await page.getByTestId("overview-connections").waitFor();
    expect(await text("overview-alert-retained")).toMatch(/below the threshold/);
    expect(await page.locator("[data-testid=overview-chart] canvas").count()).toBe(1);

    // Traffic: a subscriber, a publisher sending ~20 messages a second for 8 s, and 4
    // retained messages (one past the threshold of 3).
    const base = `overview/${uid("t")}`;
    const sub = await connect(broker.url, { version: 5, label: "overview-sub" });
    await sub.subscribe(`${base}/#`, { qos: 0 });
    const pub = await connect(broker.url, { version: 5, route: "fast", label: "overview-pub" });
    for (let i = 0; i < 4; i++) await pub.publish(`${base}/retained/${i}`, `r${i}`, { qos: 1, retain: true });
    // A refused CONNECT: a known user with a wrong password.
    const user = await createCredential(broker, "overview-user");
    await expect(connect(broker.url, { version: 5, label: "overview-bad", username: user.username, password: "wrong" })).rejects.toThrow();

    const until = Date.now() + 8_000;
    while (Date.now() < until) {
      for (let i = 0; i < 4; i++) await pub.publish(`${base}/live`, `m${i}`, { qos: 0 });
      await sleep(200);
    }

    await expect.poll(() => number("overview-connections"), POLL).toBeGreaterThanOrEqual(2);
    await expect.poll(() => number("overview-subscriptions"), POLL).toBeGreaterThanOrEqual(1);
    await expect.poll(() => number("overview-retained"), POLL).toBeGreaterThanOrEqual(4);
    await expect.poll(() => text("overview-alert-retained"), POLL).toMatch(/passed the threshold 3/);
    await expect.poll(() => number("overview-refused-authFailures-total"), POLL).toBeGreaterThanOrEqual(1);
    expect(await text("overview-refused-authFailures-minute")).toMatch(/^[1-9]/);

    // The chart got points with messages in and out.
    await expect.poll(async () => Number(await page.getByTestId("overview-chart").getAttribute("data-points")), POLL).toBeGreaterThanOrEqual(3);
    const chart = page.getByTestId("overview-chart");
    expect(Number(await chart.getAttribute("data-max-in"))).toBeGreaterThanOrEqual(5);
    expect(Number(await chart.getAttribute("data-max-out"))).toBeGreaterThanOrEqual(5);
    // While traffic flows, the current rates are above zero.
    const more = Date.now() + 4_000;
    while (Date.now() < more) {
      for (let i = 0; i < 4; i++) await pub.publish(`${base}/live`, `n${i}`, { qos: 0 });
      await sleep(200);
    }
    expect(Number(await text("overview-rate-in"))).toBeGreaterThan(0);
    expect(Number(await text("overview-rate-out"))).toBeGreaterThan(0);
    expect(await page.getByTestId("overview-error").count()).toBe(0);
    await shot("overview");
  });

  it("shows an API refusal instead of swallowing it", async () => {
    const { page, open } = dash();
    await open("#/overview");
    // The broker answers 503 with a problem: the page shows its title and detail.
    await page.route("**/api/v1/stats", (route) =>
      route.fulfill({ status: 503, contentType: "application/problem+json", body: JSON.stringify({ title: "Service Unavailable", detail: "metrics object busy" }) }),
    );
    await page.getByTestId("overview-error").waitFor({ timeout: 10_000 });
    expect(await text("overview-error")).toContain("metrics object busy");
    await page.unroute("**/api/v1/stats");
    await page.getByTestId("overview-error").waitFor({ state: "detached", timeout: 10_000 });
  });
});
