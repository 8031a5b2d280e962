// Runtime benchmark Worker (bench/runtime/run.mjs): a bare relay Durable Object.
//   GET /health                          -> 200 "ok"
//   GET /ws?room=R&mode=echo|forward     -> WebSocket accepted by the object named R
//       (Hibernation API); each binary message goes back to its sender (echo) or to
//       every other socket of the room (forward). No storage writes on that path.
//   GET /sql?room=R                      -> bumps a counter row in the object's SQLite and
//       returns it (checks that Durable Object SQLite storage persists across restarts).
// Type-checked with tsconfig.node.json (Node types), so the few Workers types it
// uses are declared here rather than taken from @cloudflare/workers-types.

interface HibernatableSocket {
  send(message: ArrayBuffer | string): void;
  close(code?: number, reason?: string): void;
}
interface SqlStorage {
  exec(query: string, ...bindings: unknown[]): { toArray(): Record<string, unknown>[] };
}
interface DurableObjectState {
  acceptWebSocket(ws: HibernatableSocket, tags?: string[]): void;
  getWebSockets(tag?: string): HibernatableSocket[];
  getTags(ws: HibernatableSocket): string[];
  storage: { sql: SqlStorage };
}
interface Namespace {
  idFromName(name: string): unknown;
  get(id: unknown): { fetch(request: Request): Promise<Response> };
}
interface Env {
  RELAY: Namespace;
}
declare const WebSocketPair: { new (): { 0: HibernatableSocket; 1: HibernatableSocket } };

export class Relay {
  constructor(
    private readonly ctx: DurableObjectState,
    _env: Env,
  ) {}

  async fetch(request: Request): Promise<Response> {
    const url = new URL(request.url);
    if (url.pathname === "/sql") {
      const sql = this.ctx.storage.sql;
      sql.exec("CREATE TABLE IF NOT EXISTS hits (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)");
      sql.exec("INSERT INTO hits (id, n) VALUES (1, 1) ON CONFLICT (id) DO UPDATE SET n = n + 1");
      const [row] = sql.exec("SELECT n FROM hits WHERE id = 1").toArray();
      return Response.json({ n: row?.["n"] });
    }
    const mode = url.searchParams.get("mode") === "forward" ? "forward" : "echo";
    const pair = new WebSocketPair();
    this.ctx.acceptWebSocket(pair[1], [mode]);
    return new Response(null, { status: 101, webSocket: pair[0] } as ResponseInit);
  }

  webSocketMessage(ws: HibernatableSocket, message: ArrayBuffer | string): void {
    if (typeof message === "string") return;
    if (this.ctx.getTags(ws)[0] === "echo") {
      ws.send(message);
      return;
    }
    for (const other of this.ctx.getWebSockets("forward")) if (other !== ws) other.send(message);
  }

  webSocketClose(ws: HibernatableSocket, code: number, reason: string): void {
    try {
      ws.close(code === 1005 ? 1000 : code, reason);
    } catch {
      // already closed
    }
  }
}

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    const url = new URL(request.url);
    if (url.pathname === "/health") return new Response("ok");
    if (url.pathname !== "/ws" && url.pathname !== "/sql") return new Response("not found", { status: 404 });
    if (url.pathname === "/ws" && request.headers.get("Upgrade") !== "websocket") {
      return new Response("expected a WebSocket upgrade", { status: 426 });
    }
    const room = url.searchParams.get("room") ?? "room";
    return env.RELAY.get(env.RELAY.idFromName(room)).fetch(request);
  },
};
