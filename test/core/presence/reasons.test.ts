import { describe, expect, it } from "vitest";
import { ReasonCode } from "../../../core/mqtt/packets.js";
import { DISCONNECT_REASONS, disconnectCause } from "../../../core/presence/reasons.js";
import { Harness, pick } from "../session/harness.js";

describe("presence reasons: names of how a connection ended", () => {
  it("a client DISCONNECT below 0x80 is normal, with its code; at or above, a client error", () => {
    expect(disconnectCause(ReasonCode.NormalDisconnection, "client")).toEqual({ reason: "normal", code: 0 });
    expect(disconnectCause(ReasonCode.DisconnectWithWill, "client")).toEqual({ reason: "normal", code: 4 });
    expect(disconnectCause(ReasonCode.ImplementationSpecificError, "client")).toEqual({ reason: "client-error", code: 0x83 });
  });

  it("the server's reasons", () => {
    expect(disconnectCause(ReasonCode.KeepAliveTimeout, "server")).toEqual({ reason: "keepalive-timeout", code: 0x8d });
    expect(disconnectCause(ReasonCode.SessionTakenOver, "server")).toEqual({ reason: "taken-over", code: 0x8e });
    expect(disconnectCause(ReasonCode.AdministrativeAction, "server")).toEqual({ reason: "admin-disconnect", code: 0x98 });
    expect(disconnectCause(ReasonCode.MessageRateTooHigh, "server")).toEqual({ reason: "rate-limited", code: 0x96 });
    expect(disconnectCause(ReasonCode.QuotaExceeded, "server")).toEqual({ reason: "rate-limited", code: 0x97 });
    expect(disconnectCause(ReasonCode.MalformedPacket, "server")).toEqual({ reason: "protocol-error", code: 0x81 });
    expect(disconnectCause(ReasonCode.PacketTooLarge, "server")).toEqual({ reason: "protocol-error", code: 0x95 });
    expect(disconnectCause(ReasonCode.UnspecifiedError, "server")).toEqual({ reason: "server-error", code: 0x80 });
  });

  it("a socket closed without DISCONNECT is connection-lost (keep alive still named); one that vanished is lease-expired", () => {
    expect(disconnectCause(ReasonCode.UnspecifiedError, "lost")).toEqual({ reason: "connection-lost" });
    expect(disconnectCause(ReasonCode.KeepAliveTimeout, "lost")).toEqual({ reason: "keepalive-timeout", code: 0x8d });
    expect(disconnectCause(ReasonCode.UnspecifiedError, "vanished")).toEqual({ reason: "lease-expired" });
  });

  it("every name is one of the documented list", () => {
    const codes = Array.from({ length: 256 }, (_, i) => i);
    for (const ending of ["client", "server", "lost", "vanished"] as const) {
      for (const code of codes) expect(DISCONNECT_REASONS).toContain(disconnectCause(code, ending).reason);
    }
  });
});

describe("presence events from the session", () => {
  it("connect: online with the connection's identity, version and user name", () => {
    const h = new Harness();
    const effects = h.connect(5, { username: "u1" });
    expect(pick(effects, "presence")[0]!.event).toEqual({ clientId: "c1", online: true, at: h.now, connectedAt: h.now, protocolVersion: 5, username: "u1" });
  });

  it("a clean DISCONNECT: normal; session expiry from the interval; null when the session ends with the connection", () => {
    const h = new Harness();
    h.connectPersistent(5, {}, 600);
    const connectedAt = h.now;
    h.now += 1_000;
    const effects = h.packet({ type: "disconnect", reasonCode: 0 });
    expect(pick(effects, "presence")[0]!.event).toEqual({
      clientId: "c1",
      online: false,
      at: h.now,
      connectedAt,
      reason: "normal",
      code: 0,
      willFired: false,
      sessionExpiresAt: h.now + 600_000,
    });
    const clean = new Harness();
    clean.connect(4);
    const lost = clean.session.connectionLost(ReasonCode.UnspecifiedError, clean.now, "lost");
    expect(pick(lost, "presence")[0]!.event).toMatchObject({ reason: "connection-lost", sessionExpiresAt: null });
  });

  it("a socket found gone after a restart: lease-expired", () => {
    const h = new Harness();
    h.connectPersistent(4);
    const effects = h.session.connectionLost(ReasonCode.UnspecifiedError, h.now, "vanished");
    expect(pick(effects, "presence")[0]!.event).toMatchObject({ online: false, reason: "lease-expired" });
  });
});
