import { describe, expect, it } from "vitest";
import { BROKER_VERSION, changedValues, metricsFormat, sysValues, type SysStats } from "../../../core/metrics";

const stats = (over: Partial<SysStats> = {}): SysStats => ({
  uptimeSeconds: 42.7,
  connected: 2,
  sessions: 5,
  received: 100,
  sent: 250,
  dropped: 1,
  retained: 7,
  subscriptions: 3,
  rates: { received: { "1min": 1, "5min": 0.5, "15min": 0.25 }, sent: { "1min": 2.5, "5min": 1, "15min": 0 } },
  ...over,
});

describe("$SYS values", () => {
  it("uses Mosquitto's topic names and formats", () => {
    const v = sysValues(stats());
    expect(v).toMatchObject({
      "$SYS/broker/version": `edge-mqtt version ${BROKER_VERSION}`,
      "$SYS/broker/uptime": "42 seconds",
      "$SYS/broker/clients/connected": "2",
      "$SYS/broker/clients/total": "5",
      "$SYS/broker/messages/received": "100",
      "$SYS/broker/messages/sent": "250",
      "$SYS/broker/publish/messages/received": "100",
      "$SYS/broker/publish/messages/sent": "250",
      "$SYS/broker/publish/messages/dropped": "1",
      "$SYS/broker/retained messages/count": "7",
      "$SYS/broker/subscriptions/count": "3",
      // Messages per minute, as Mosquitto's load figures.
      "$SYS/broker/load/messages/received/1min": "60.00",
      "$SYS/broker/load/messages/received/5min": "30.00",
      "$SYS/broker/load/messages/received/15min": "15.00",
      "$SYS/broker/load/messages/sent/1min": "150.00",
      "$SYS/broker/load/messages/sent/15min": "0.00",
      "$SYS/broker/load/publish/received/1min": "60.00",
    });
  });

  it("leaves out what is not known", () => {
    const v = sysValues(stats({ connected: undefined, sessions: undefined, retained: undefined, subscriptions: undefined }));
    for (const t of ["clients/connected", "clients/total", "retained messages/count", "subscriptions/count"]) expect(v).not.toHaveProperty(`$SYS/broker/${t}`);
    expect(v).toHaveProperty("$SYS/broker/uptime");
  });

  it("diffs against what was published last: only changed values go out", () => {
    const last = new Map(Object.entries(sysValues(stats())));
    const next = sysValues(stats({ uptimeSeconds: 52, received: 101 }));
    expect(changedValues(last, next)).toEqual([
      ["$SYS/broker/uptime", "52 seconds"],
      ["$SYS/broker/messages/received", "101"],
      ["$SYS/broker/publish/messages/received", "101"],
    ]);
    expect(changedValues(new Map(), next)).toHaveLength(Object.keys(next).length); // after a restart: everything
    expect(changedValues(new Map(Object.entries(next)), next)).toEqual([]);
  });
});

describe("GET /metrics content negotiation", () => {
  it("answers JSON by default, to */*, to application/json and on a tie", () => {
    expect(metricsFormat(undefined)).toBe("json");
    expect(metricsFormat("")).toBe("json");
    expect(metricsFormat("*/*")).toBe("json");
    expect(metricsFormat("application/json")).toBe("json");
    expect(metricsFormat("application/json, text/plain")).toBe("json");
    expect(metricsFormat("text/plain;q=0.5, application/json;q=0.9")).toBe("json");
  });

  it("answers Prometheus' text format to text/plain and to Prometheus' own Accept header", () => {
    expect(metricsFormat("text/plain")).toBe("prometheus");
    expect(metricsFormat("text/plain; version=0.0.4")).toBe("prometheus");
    expect(metricsFormat("text/*")).toBe("prometheus");
    expect(
      metricsFormat("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"),
    ).toBe("prometheus");
    expect(metricsFormat("application/openmetrics-text")).toBe("prometheus");
    expect(metricsFormat("application/json;q=0, */*")).toBe("prometheus");
  });

  it("lets ?format= override the header", () => {
    expect(metricsFormat("application/json", "prometheus")).toBe("prometheus");
    expect(metricsFormat("text/plain", "json")).toBe("json");
    expect(metricsFormat("text/plain", "xml")).toBe("prometheus");
  });
});
