// The experiment that chose links (docs/benchmarks.md, "Links: what a hop costs"): bench/relay's MQTT relay
// with the broker's shape of hops and nothing else. Each client has its own object (HopSession,
// by the last path segment); a PUBLISH goes session -> shard -> subscriber's session -> socket.
//   HOP = "rpc"    each hop is an RPC call per message (the broker before links)
//         "ws"     each hop is a message on a WebSocket between the two objects (the caller
//                  holds the client end, the callee accepts it with the Hibernation API)
//         "wsack"  the same, and the callee answers every message (a link's call, not a cast)
//         "none"   no shard: the publisher's session calls the subscriber's directly (one RPC hop)
// Run it with the latency load: node bench/profile/tail.mjs --config bench/runtime/hops/wrangler.toml --var HOP=ws
import { DurableObject } from "cloudflare:workers";
import { CONNACK_V4, CONNACK_V5, PINGRESP, connectIsV5, subackFor } from "../../relay/replies";

interface Env {
  SESSIONS: DurableObjectNamespace<HopSession>;
  SHARDS: DurableObjectNamespace<HopShard>;
  HOP: string;
}

const ACK = new Uint8Array([1, 0, 0, 0, 1]);

async function openLink(stub: { fetch(r: Request): Promise<Response> }, path: string): Promise<WebSocket> {
  const res = await stub.fetch(new Request(`http://do${path}`, { headers: { Upgrade: "websocket" } }));
  const ws = res.webSocket;
  if (!ws) throw new Error(`no link: ${res.status}`);
  ws.accept();
  (ws as { binaryType?: string }).binaryType = "arraybuffer";
  ws.addEventListener("message", () => {}); // the answers of "wsack": received, as a link's are
  return ws;
}

export class HopShard extends DurableObject<Env> {
  #subs = new Set<string>();
  #links = new Map<string, Promise<WebSocket>>();
  #stubs = new Map<string, DurableObjectStub<HopSession>>();

  override async fetch(_request: Request): Promise<Response> {
    const pair = new WebSocketPair();
    this.ctx.acceptWebSocket(pair[1], ["link"]);
    return new Response(null, { status: 101, webSocket: pair[0] });
  }
  override async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    if (typeof message === "string") return;
    this.publish(message);
    if (this.env.HOP === "wsack") ws.send(ACK);
  }
  async subscribe(id: string): Promise<void> {
    this.#subs.add(id);
  }
  async subscribers(): Promise<string[]> {
    return [...this.#subs];
  }
  publish(bytes: ArrayBuffer): void {
    for (const id of this.#subs) {
      if (this.env.HOP.startsWith("ws")) {
        let link = this.#links.get(id);
        if (!link) this.#links.set(id, (link = openLink(this.#stub(id), "/link")));
        void link.then((ws) => ws.send(bytes));
      } else void this.#stub(id).deliver(bytes);
    }
  }
  #stub(id: string): DurableObjectStub<HopSession> {
    let s = this.#stubs.get(id);
    if (!s) this.#stubs.set(id, (s = this.env.SESSIONS.get(this.env.SESSIONS.idFromName(id))));
    return s;
  }
}

export class HopSession extends DurableObject<Env> {
  #shard = this.env.SHARDS.get(this.env.SHARDS.idFromName("shard"));
  #link: Promise<WebSocket> | undefined;
  #direct: DurableObjectStub<HopSession>[] | undefined;
  #id = "";
  #v5 = new WeakMap<WebSocket, boolean>();

  override async fetch(request: Request): Promise<Response> {
    const pair = new WebSocketPair();
    const path = new URL(request.url).pathname;
    const isLink = path === "/link";
    if (!isLink) this.#id = decodeURIComponent(path.split("/").pop() ?? "");
    this.ctx.acceptWebSocket(pair[1], [isLink ? "link" : "client"]);
    const offered = request.headers.get("Sec-WebSocket-Protocol") ?? "";
    const headers = offered.toLowerCase().includes("mqtt") ? { "Sec-WebSocket-Protocol": "mqtt" } : undefined;
    return new Response(null, { status: 101, webSocket: pair[0], ...(headers ? { headers } : {}) });
  }

  async deliver(bytes: ArrayBuffer): Promise<void> {
    for (const ws of this.ctx.getWebSockets("client")) ws.send(bytes);
  }

  override async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    if (typeof message === "string") return;
    if (this.ctx.getTags(ws)[0] === "link") {
      await this.deliver(message);
      if (this.env.HOP === "wsack") ws.send(ACK);
      return;
    }
    const bytes = new Uint8Array(message);
    const first = bytes[0]!;
    if ((first & 0xf0) === 0x30) {
      switch (this.env.HOP) {
        case "ws":
        case "wsack":
          (this.#link ??= openLink(this.#shard, "/link")).then((l) => l.send(message));
          return;
        case "none":
          this.#direct ??= (await this.#shard.subscribers()).map((id) => this.env.SESSIONS.get(this.env.SESSIONS.idFromName(id)));
          for (const s of this.#direct) void s.deliver(message);
          return;
        default:
          void this.#shard.publish(message);
          return;
      }
    }
    switch (first) {
      case 0x10: {
        const v5 = connectIsV5(bytes);
        this.#v5.set(ws, v5);
        ws.send(v5 ? CONNACK_V5 : CONNACK_V4);
        return;
      }
      case 0x82: {
        await this.#shard.subscribe(this.#id);
        ws.send(subackFor(bytes, this.#v5.get(ws) ?? false));
        return;
      }
      case 0xc0:
        ws.send(PINGRESP);
        return;
      case 0xe0:
        ws.close(1000, "disconnect");
        return;
    }
  }
}

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    const url = new URL(request.url);
    if (url.pathname === "/health") return Response.json({ status: "ok" });
    if (request.headers.get("Upgrade")?.toLowerCase() !== "websocket") return new Response("not found", { status: 404 });
    const id = decodeURIComponent(url.pathname.split("/").pop() ?? "x");
    return env.SESSIONS.get(env.SESSIONS.idFromName(id)).fetch(request);
  },
} satisfies ExportedHandler<Env>;
