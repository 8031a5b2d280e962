import { describe, expect, it } from "vitest";
import { leaseMsOf, renewalDeadline, renewalDue } from "../../../core/presence/lease.js";
import { mergePatches, patchColumns, type DevicePatch } from "../../../core/presence/patch.js";
import { onEvent, onHttpSeen, onSweep, type LeaseState, type PresenceSettings } from "../../../core/presence/state.js";
import { announcementPayload, announcementTopic } from "../../../core/presence/sys.js";
import { presenceShardOf } from "../../../core/presence/shard.js";
import type { PresenceEvent } from "../../../core/session/types.js";

const T = 1_700_000_000_000;
const S: PresenceSettings = { leaseMs: 90_000, httpWindowMs: 300_000 };
const online = (at: number, extra: Partial<PresenceEvent> = {}): PresenceEvent => ({ clientId: "d1", online: true, at, connectedAt: at, protocolVersion: 5, ...extra });
const offline = (at: number, connectedAt: number, extra: Partial<PresenceEvent> = {}): PresenceEvent => ({
  clientId: "d1",
  online: false,
  at,
  connectedAt,
  reason: "normal",
  code: 0,
  willFired: false,
  sessionExpiresAt: null,
  ...extra,
});
const renewal = (at: number, connectedAt: number): PresenceEvent => ({ clientId: "d1", online: true, renewal: true, at, connectedAt });
const live = (connectedAt: number, extra: Partial<LeaseState> = {}): LeaseState => ({
  connectedAt,
  expiresAt: connectedAt + S.leaseMs,
  renewedAt: connectedAt,
  transport: "mqtt",
  expired: false,
  ...extra,
});

describe("lease math", () => {
  it("a packet renews once half the lease has passed; the alarm at three quarters", () => {
    expect(renewalDue(undefined, T, 90_000)).toBe(true);
    expect(renewalDue(T, T + 44_999, 90_000)).toBe(false);
    expect(renewalDue(T, T + 45_000, 90_000)).toBe(true);
    expect(renewalDeadline(T, 90_000)).toBe(T + 67_500);
    expect(leaseMsOf(90)).toBe(90_000);
    expect(leaseMsOf(0)).toBe(2_000);
  });

  it("a stream of packets every second renews at most once per half lease", () => {
    let renewedAt: number | undefined = T;
    let renewals = 0;
    for (let t = T; t <= T + 900_000; t += 1_000) {
      if (renewalDue(renewedAt, t, 90_000)) {
        renewedAt = t;
        renewals++;
      }
    }
    expect(renewals).toBe(20); // 900 s / 45 s
  });
});

describe("patches: merged per client until the flush", () => {
  it("the later change wins column by column; connection counts add up", () => {
    const a: DevicePatch = { online: true, connectedAt: T, username: "u", leaseExpiresAt: T + 90_000, countAdd: 1 };
    const b: DevicePatch = { online: false, disconnectedAt: T + 5, disconnectReason: "normal", countAdd: 0 };
    const c: DevicePatch = { online: true, connectedAt: T + 10, countAdd: 1 };
    expect(mergePatches(mergePatches(a, b), c)).toEqual({
      online: true,
      connectedAt: T + 10,
      username: "u",
      leaseExpiresAt: T + 90_000,
      disconnectedAt: T + 5,
      disconnectReason: "normal",
      countAdd: 2,
    });
  });

  it("null is a value (the column is cleared), undefined leaves it", () => {
    const merged = mergePatches({ disconnectReason: "normal", countAdd: 0 }, { disconnectReason: null, countAdd: 0 });
    expect(merged.disconnectReason).toBeNull();
    expect(patchColumns(merged)).toEqual({ disconnectReason: null });
  });

  it("a base restarts the count (a decommissioned device registered anew)", () => {
    expect(mergePatches({ countAdd: 3 }, { countBase: 0, countAdd: 1 })).toMatchObject({ countBase: 0, countAdd: 1 });
    expect(mergePatches({ countBase: 0, countAdd: 1 }, { countAdd: 1 })).toMatchObject({ countBase: 0, countAdd: 2 });
  });
});

describe("the presence object's decisions", () => {
  it("connect: a lease for PRESENCE_LEASE, the whole row, one more connection, an announcement", () => {
    const step = onEvent(online(T, { username: "u", remoteAddress: "203.0.113.9" }), undefined, undefined, S);
    expect(step.lease).toEqual(live(T));
    expect(step.patch).toMatchObject({
      online: true,
      transport: "mqtt",
      protocolVersion: 5,
      username: "u",
      remoteAddress: "203.0.113.9",
      connectedAt: T,
      leaseExpiresAt: T + 90_000,
      disconnectReason: null,
      decommissionedAt: null,
      countAdd: 1,
    });
    expect(step.announce).toEqual({ event: "connected", clientId: "d1", at: T, transport: "mqtt", protocolVersion: 5, username: "u", remoteAddress: "203.0.113.9" });
  });

  it("a renewal of the current connection moves the lease; of another connection, nothing", () => {
    const step = onEvent(renewal(T + 45_000, T), live(T), undefined, S);
    expect(step.lease).toMatchObject({ expiresAt: T + 135_000, renewedAt: T + 45_000 });
    expect(step.patch).toEqual({ leaseExpiresAt: T + 135_000, lastSeenAt: T + 45_000, countAdd: 0 });
    expect(step.announce).toBeUndefined();
    expect(onEvent(renewal(T + 45_000, T - 1), live(T), undefined, S)).toEqual({});
    expect(onEvent(renewal(T + 45_000, T), undefined, undefined, S)).toEqual({}); // disconnected already
  });

  it("disconnect: offline with the reason, the lease gone; a late one of an older connection changes nothing", () => {
    const step = onEvent(offline(T + 9, T, { reason: "protocol-error", code: 0x81 }), live(T), undefined, S);
    expect(step.lease).toBeNull();
    expect(step.patch).toMatchObject({ online: false, disconnectedAt: T + 9, disconnectReason: "protocol-error", disconnectCode: 0x81, countAdd: 0 });
    expect(step.announce).toMatchObject({ event: "disconnected", reason: "protocol-error", code: 0x81 });
    expect(onEvent(offline(T + 9, T - 50), live(T), undefined, S)).toEqual({});
  });

  it("the sweep: a lease that ran out is offline, lease-expired, disconnected when it ended", () => {
    expect(onSweep("d1", live(T), T + 89_999)).toEqual({});
    const step = onSweep("d1", live(T), T + 95_000);
    expect(step.lease).toMatchObject({ expired: true });
    expect(step.patch).toEqual({ online: false, disconnectedAt: T + 90_000, disconnectReason: "lease-expired", disconnectCode: null, countAdd: 0 });
    expect(step.announce).toEqual({ event: "disconnected", clientId: "d1", at: T + 90_000, transport: "mqtt", reason: "lease-expired" });
  });

  it("after the sweep: a late renewal of the live connection brings it back; the session's own lease-expired adds only the Will", () => {
    const swept = live(T, { expired: true });
    const back = onEvent(renewal(T + 100_000, T), swept, undefined, S);
    expect(back.patch).toMatchObject({ online: true, disconnectReason: null, leaseExpiresAt: T + 190_000 });
    expect(back.announce?.event).toBe("connected");
    const late = onEvent(offline(T + 200_000, T, { reason: "lease-expired", code: undefined, willFired: true }), swept, undefined, S);
    expect(late).toEqual({ lease: null, patch: { willFired: true, sessionExpiresAt: null, countAdd: 0 } });
  });

  it("decommissioned: later disconnects and renewals are ignored; a new connect registers it anew", () => {
    expect(onEvent(offline(T + 5, T, { reason: "admin-disconnect" }), undefined, T, S)).toEqual({});
    expect(onEvent(renewal(T + 5, T), live(T), T, S)).toEqual({});
    const anew = onEvent(online(T + 10), undefined, T, S);
    expect(anew.clearDecommission).toBe(true);
    expect(anew.patch).toMatchObject({ decommissionedAt: null, disconnectedAt: null, countBase: 0, countAdd: 1 });
  });

  it("HTTP: online for the window, one reporting period; renewed at most once per half window; an MQTT connection wins", () => {
    const first = onHttpSeen({ clientId: "g1", at: T, remoteAddress: "198.51.100.1" }, undefined, undefined, S);
    expect(first.lease).toMatchObject({ transport: "http", expiresAt: T + 300_000 });
    expect(first.patch).toMatchObject({ online: true, transport: "http", countAdd: 1, remoteAddress: "198.51.100.1" });
    expect(first.announce).toMatchObject({ event: "connected", transport: "http" });
    const lease = first.lease!;
    expect(onHttpSeen({ clientId: "g1", at: T + 10_000 }, lease, undefined, S)).toEqual({});
    expect(onHttpSeen({ clientId: "g1", at: T + 150_000 }, lease, undefined, S).patch).toEqual({ leaseExpiresAt: T + 450_000, lastSeenAt: T + 150_000, countAdd: 0 });
    expect(onHttpSeen({ clientId: "d1", at: T + 1 }, live(T), undefined, S)).toEqual({});
    const again = onHttpSeen({ clientId: "g1", at: T + 400_000 }, { ...lease, expired: true }, undefined, S);
    expect(again.patch).toMatchObject({ online: true, countAdd: 1 }); // a new reporting period
  });
});

describe("$SYS announcements and shards", () => {
  it("topic per client and event; none for a client identifier with a wildcard", () => {
    const a = { event: "connected" as const, clientId: "dev-1", at: T, transport: "mqtt" as const };
    expect(announcementTopic(a)).toBe("$SYS/broker/clients/dev-1/connected");
    expect(JSON.parse(new TextDecoder().decode(announcementPayload(a)))).toEqual(a);
    expect(announcementTopic({ ...a, clientId: "a+b" })).toBeUndefined();
    expect(announcementTopic({ ...a, clientId: "" })).toBeUndefined();
  });

  it("client identifiers spread over the presence shards", () => {
    const counts = [0, 0, 0, 0];
    for (let i = 0; i < 4000; i++) counts[presenceShardOf(`device-${i}`, 4)]!++;
    for (const n of counts) expect(n).toBeGreaterThan(800);
    expect(presenceShardOf("x", 1)).toBe(0);
  });
});
