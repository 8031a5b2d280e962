// A minimal Chrome DevTools Protocol client over the `ws` package, for workerd's inspector.
import WebSocket from "ws";

/** @typedef {{ id: string, title?: string, type?: string, url?: string, webSocketDebuggerUrl: string }} Target */

/**
 * The inspector's targets (workerd: one per Worker / isolate).
 * @param {number} port
 * @returns {Promise<Target[]>}
 */
export async function listTargets(port) {
  const res = await fetch(`http://127.0.0.1:${port}/json`);
  if (!res.ok) throw new Error(`inspector /json: HTTP ${res.status}`);
  return /** @type {Target[]} */ (await res.json());
}

export class CdpSession {
  /** @param {string} url */
  constructor(url) {
    this.url = url;
    /** @type {WebSocket | undefined} */
    this.ws = undefined;
    this.seq = 0;
    /** @type {Map<number, { resolve: (v: any) => void, reject: (e: Error) => void }>} */
    this.waiting = new Map();
    /** @type {Map<string, (params: any) => void>} */
    this.listeners = new Map();
  }

  /** Calls `fn` with the params of every event named `method` (one listener per method). @param {string} method @param {(params: any) => void} fn */
  on(method, fn) {
    this.listeners.set(method, fn);
  }

  /** @returns {Promise<void>} */
  open() {
    return new Promise((resolve, reject) => {
      // workerd's inspector takes any subprotocol-less upgrade; no compression.
      const ws = new WebSocket(this.url, { perMessageDeflate: false, maxPayload: 1024 * 1024 * 1024 });
      this.ws = ws;
      ws.on("open", () => resolve());
      ws.on("error", reject);
      ws.on("message", (data) => {
        const msg = JSON.parse(String(data));
        if (typeof msg.id !== "number") {
          if (typeof msg.method === "string") this.listeners.get(msg.method)?.(msg.params);
          return;
        }
        const w = this.waiting.get(msg.id);
        this.waiting.delete(msg.id);
        if (!w) return;
        if (msg.error) w.reject(new Error(`${msg.error.message} (${msg.error.code})`));
        else w.resolve(msg.result);
      });
      ws.on("close", () => {
        for (const w of this.waiting.values()) w.reject(new Error("inspector session closed"));
        this.waiting.clear();
      });
    });
  }

  /**
   * @param {string} method
   * @param {Record<string, unknown>} [params]
   * @returns {Promise<any>}
   */
  send(method, params = {}) {
    const id = ++this.seq;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      this.ws?.send(JSON.stringify({ id, method, params }));
    });
  }

  close() {
    this.ws?.close();
  }
}
