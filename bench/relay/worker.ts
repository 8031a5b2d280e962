// The benchmark's "limit" reference (bench/run.mjs): the cheapest MQTT-over-WebSocket relay
// that runs on the same runtime as the broker. One Durable Object (every upgrade goes to
// idFromName("relay")), Hibernation API, nothing stored. It looks only at the first byte of
// each WebSocket message and assumes one whole packet per message (what the bench's lean
// client sends):
//   CONNECT (0x10)   -> a fixed CONNACK (3.1.1 or 5.0 form, after the protocol level byte)
//   SUBSCRIBE (0x82) -> the socket becomes a subscriber; SUBACK granting QoS 0, same packet id
//   PUBLISH (0x30)   -> the same bytes to every subscriber socket
//   PINGREQ (0xC0)   -> PINGRESP; DISCONNECT (0xE0) -> close
import { DurableObject } from "cloudflare:workers";
import { CONNACK_V4, CONNACK_V5, PINGRESP, connectIsV5, subackFor } from "./replies";

interface Env {
  RELAY: DurableObjectNamespace<RelayDO>;
}

interface Attachment {
  v5: boolean;
  sub: boolean;
}


export class RelayDO extends DurableObject<Env> {
  /** Subscriber sockets; rebuilt from the attachments after hibernation. */
  #subs: Set<WebSocket> | undefined;

  override async fetch(request: Request): Promise<Response> {
    const pair = new WebSocketPair();
    const [client, server] = [pair[0], pair[1]];
    this.ctx.acceptWebSocket(server);
    server.serializeAttachment({ v5: false, sub: false } satisfies Attachment);
    const offered = request.headers.get("Sec-WebSocket-Protocol") ?? "";
    const headers = offered.toLowerCase().includes("mqtt") ? { "Sec-WebSocket-Protocol": "mqtt" } : undefined;
    return new Response(null, { status: 101, webSocket: client, ...(headers ? { headers } : {}) });
  }

  #subscribers(): Set<WebSocket> {
    if (!this.#subs) {
      this.#subs = new Set();
      for (const ws of this.ctx.getWebSockets()) {
        if ((ws.deserializeAttachment() as Attachment | null)?.sub) this.#subs.add(ws);
      }
    }
    return this.#subs;
  }

  override async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    if (typeof message === "string") return ws.close(1003, "binary only");
    const bytes = new Uint8Array(message);
    const first = bytes[0];
    if ((first! & 0xf0) === 0x30) {
      for (const sub of this.#subscribers()) {
        try {
          sub.send(message);
        } catch {
          this.#subscribers().delete(sub);
        }
      }
      return;
    }
    switch (first) {
      case 0x10: {
        const v5 = connectIsV5(bytes);
        ws.serializeAttachment({ v5, sub: false } satisfies Attachment);
        ws.send(v5 ? CONNACK_V5 : CONNACK_V4);
        return;
      }
      case 0x82: {
        const att = (ws.deserializeAttachment() as Attachment | null) ?? { v5: false, sub: false };
        if (!att.sub) ws.serializeAttachment({ ...att, sub: true } satisfies Attachment);
        this.#subscribers().add(ws);
        ws.send(subackFor(bytes, att.v5));
        return;
      }
      case 0xc0:
        ws.send(PINGRESP);
        return;
      case 0xe0:
        this.#subscribers().delete(ws);
        ws.close(1000, "disconnect");
        return;
      default:
        return; // anything else is ignored
    }
  }

  override async webSocketClose(ws: WebSocket): Promise<void> {
    this.#subscribers().delete(ws);
  }

  override async webSocketError(ws: WebSocket): Promise<void> {
    this.#subscribers().delete(ws);
  }
}

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    const url = new URL(request.url);
    if (url.pathname === "/health") return Response.json({ status: "ok" });
    if (request.headers.get("Upgrade")?.toLowerCase() !== "websocket") return new Response("not found", { status: 404 });
    return env.RELAY.get(env.RELAY.idFromName("relay")).fetch(request);
  },
} satisfies ExportedHandler<Env>;
