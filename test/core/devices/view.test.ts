// Reading the device registry: presence with leases, client identifier prefix ranges, the
// retained filters of a decommissioned device.
import { describe, expect, it } from "vitest";
import { clientIdRange, decommissionFilters, presenceOf, type PresenceColumns } from "../../../core/devices/view.js";

const NOW = 1_700_000_000_000;
const row = (o: Partial<PresenceColumns>): PresenceColumns => ({
  online: false,
  leaseExpiresAt: null,
  disconnectedAt: null,
  disconnectReason: null,
  disconnectCode: null,
  ...o,
});

describe("presenceOf: online iff online = 1 AND lease_expires_at > now", () => {
  it("online with a running lease", () => {
    expect(presenceOf(row({ online: true, leaseExpiresAt: NOW + 1, disconnectReason: "normal", disconnectedAt: NOW - 5 }), NOW)).toStrictEqual({
      online: true,
      disconnectedAt: NOW - 5,
      disconnectReason: null,
      disconnectCode: null,
    });
  });

  it("a lease that ran out (or is exactly now) is offline, lease-expired, disconnected when it ended", () => {
    for (const lease of [NOW, NOW - 60_000]) {
      expect(presenceOf(row({ online: true, leaseExpiresAt: lease, disconnectReason: "normal", disconnectCode: 0x81 }), NOW)).toStrictEqual({
        online: false,
        disconnectedAt: lease,
        disconnectReason: "lease-expired",
        disconnectCode: null,
      });
    }
  });

  it("online without a lease is not trusted", () => {
    expect(presenceOf(row({ online: true }), NOW)).toMatchObject({ online: false, disconnectReason: "lease-expired" });
  });

  it("offline rows keep their own reason and code", () => {
    const r = row({ online: false, leaseExpiresAt: NOW + 10_000, disconnectedAt: NOW - 1, disconnectReason: "protocol-error", disconnectCode: 0x81 });
    expect(presenceOf(r, NOW)).toStrictEqual({ online: false, disconnectedAt: NOW - 1, disconnectReason: "protocol-error", disconnectCode: 0x81 });
  });
});

describe("clientIdRange", () => {
  it("a half-open range over the identifiers with the prefix, in UTF-8 byte order", () => {
    expect(clientIdRange("sensor-")).toStrictEqual({ low: "sensor-", high: "sensor." });
    expect(clientIdRange("a%_")).toStrictEqual({ low: "a%_", high: "a%`" }); // LIKE characters are plain
    expect(clientIdRange("x\u{10FFFF}")).toStrictEqual({ low: "x\u{10FFFF}", high: "y" });
    expect(clientIdRange("\u{10FFFF}").high).toBeUndefined();
    const { low, high } = clientIdRange("dev");
    const inRange = (id: string) => Buffer.compare(Buffer.from(id), Buffer.from(low)) >= 0 && Buffer.compare(Buffer.from(id), Buffer.from(high!)) < 0;
    expect(["dev", "dev-1", "dev\u{10FFFF}", "devé"].every(inRange)).toBe(true);
    expect(["de", "dew", "dex", "e", "Dev"].some(inRange)).toBe(false);
  });
});

describe("decommissionFilters", () => {
  it("replaces %c in each comma-separated template, skipping blanks and duplicates", () => {
    expect(decommissionFilters("devices/%c/#, , status/%c,devices/%c/#, fixed/topic", "s-1")).toStrictEqual({
      filters: ["devices/s-1/#", "status/s-1", "fixed/topic"],
      skipped: [],
    });
  });

  it("never turns a template into a wildcard over other devices", () => {
    for (const id of ["+", "#", "a+b", "x#"]) {
      const r = decommissionFilters("devices/%c/#,static/#", id);
      expect(r.filters).toEqual(["static/#"]);
      expect(r.skipped.map((s) => s.template)).toEqual(["devices/%c/#"]);
    }
  });

  it("skips a template that gives no valid filter", () => {
    const r = decommissionFilters("a/#/%c", "d1");
    expect(r.filters).toEqual([]);
    expect(r.skipped[0]!.reason).toMatch(/not a valid topic filter/);
  });
});
