/**
 * Links: a WebSocket between two Durable Objects that carries a busy pair's calls (the
 * session's publishBatch to a shard, the shard's deliver to a session) instead of one RPC per
 * call. docs/architecture.md, "Links", has the measurement that chose them: an RPC leaves
 * runtime objects behind on both sides that only a full garbage collection frees, and those
 * collections were the latency tail; a WebSocket message leaves far less.
 *
 * The caller opens a link (a WebSocket upgrade to the callee's fetch) once calls to that callee
 * come at LINK_MIN_RATE or more per second, and closes it after LINK_IDLE_MS without a call,
 * since an open client WebSocket keeps the caller in memory. The callee accepts it with the
 * Hibernation API, so the link never keeps it awake. Until the link is open, for a call too
 * large for one WebSocket message, and after it is lost, calls go by RPC. Callers keep one
 * call in flight per callee (Batcher), so switching between the two never reorders calls.
 * A call in flight when its link is lost fails, as an RPC to an object that died would.
 *
 * Casts: a call whose caller needs no answer in the usual case (a lone QoS 0 message: its
 * routing, or its delivery, whose only interesting answer is "that session is gone") is sent
 * without waiting for one, and the callee answers it only when the result is one its method
 * reports (LinkMethod.report). An answer per message doubled the runtime events, and the garbage,
 * of a link; a cast has none. Every CAST_SYNC_EVERY-th castable call still goes as a call, so a
 * caller that outruns its callee waits for it there, and what it sends meanwhile joins one batch.
 * Callers cast only lone messages: a batch of several means load, and a call's wait lets the
 * next batch grow.
 * A cast on a link that is then lost is lost with it: QoS 0, at most once.
 *
 * The frames are core/util/link-frame.ts. Answers leave the callee through the output gate
 * like an RPC's return: not before what the call wrote is durable.
 */
import { LinkFrameKind, decodeLinkFrame, encodeCall, encodeCast, encodeError, encodeResult } from "../core/util/link-frame";
import type { Env } from "../worker/env";
import { numberVar } from "./config";
import { safeClose, safeSend } from "./socket";

/** Header of a link's upgrade; the Worker removes it from every client request (worker/routes/mqtt.ts). */
export const LINK_HEADER = "X-Edge-Mqtt-Link";
/** The tag of a link's socket on its callee (client sockets have their own). */
export const LINK_TAG = "link";
/** One WebSocket message may be 1 MiB on Cloudflare; a larger call goes by RPC. */
const MAX_FRAME_BYTES = 1_000_000;
/** After a link could not be opened, calls go by RPC this long before the next try. */
const RETRY_AFTER_MS = 10_000;
/** Of the castable calls on a link, one in this many goes as a call (flow control; see above). */
export const CAST_SYNC_EVERY = 16;

export interface LinkOptions {
  /** Calls per second to one callee from which a link is opened; 0: always; Infinity: never. */
  minRate: number;
  /** A link with no call for this long is closed. */
  idleMs: number;
  /** Links one object holds open at most (the rest go by RPC). */
  maxOpen: number;
}

export const DEFAULT_LINK_MIN_RATE = 5;
export const DEFAULT_LINK_IDLE_MS = 5_000;
export const DEFAULT_LINK_MAX_OPEN = 256;

/** LINK_MIN_RATE ("off": never), LINK_IDLE_MS and LINK_MAX_OPEN from wrangler.toml [vars]. */
export function linkOptionsFromEnv(env: Pick<Env, "LINK_MIN_RATE" | "LINK_IDLE_MS" | "LINK_MAX_OPEN">): LinkOptions {
  const off = env.LINK_MIN_RATE?.trim().toLowerCase() === "off";
  return {
    minRate: off ? Number.POSITIVE_INFINITY : numberVar(env, "LINK_MIN_RATE", DEFAULT_LINK_MIN_RATE),
    idleMs: Math.max(100, numberVar(env, "LINK_IDLE_MS", DEFAULT_LINK_IDLE_MS)),
    maxOpen: off ? 0 : numberVar(env, "LINK_MAX_OPEN", DEFAULT_LINK_MAX_OPEN),
  };
}

/** The upgrade that opens a link to the object behind `stub`. */
export function linkRequest(): Request {
  return new Request("https://link.internal/link", { headers: { Upgrade: "websocket", [LINK_HEADER]: "1" } });
}

/** The links one object opens (at most `maxOpen` at once), and what it counts of them. */
export class Links {
  readonly options: LinkOptions;
  /** Counts each answer received: an incoming WebSocket message (the callee counts the upgrade as a request). */
  readonly #count: () => void;
  open = 0;

  constructor(options: LinkOptions, count: () => void = () => {}) {
    this.options = options;
    this.#count = count;
  }

  /**
   * A link to one callee; `connect` makes the upgrade request (stub.fetch(linkRequest())),
   * `onReport` hears what the callee reports of a cast (its method and result).
   */
  to(connect: () => Promise<Response>, onReport?: Report): Link {
    return new Link(this, connect, this.#count, onReport);
  }
}

/** The callee's report on a cast: its method and what it returned (an Error when it threw). */
export type Report = (method: string, value: unknown) => void;

interface Waiting {
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
  /** Its place among the frames this link sent. */
  seq: number;
}

/** A cast that may still be reported on (its arguments are not kept: they would outlive it). */
interface Cast {
  method: string;
  seq: number;
}

export class Link {
  readonly #links: Links;
  readonly #connect: () => Promise<Response>;
  readonly #count: () => void;
  readonly #onReport: Report | undefined;
  #socket: WebSocket | undefined;
  /** Casts sent and not yet known to be handled (dropped at the next answer to a call after them). */
  readonly #casts = new Map<number, Cast>();
  #castsSinceCall = 0;
  /** Frames sent on this link (does not wrap, unlike the call numbers). */
  #sent = 0;
  #opening = false;
  #retryAt = 0;
  readonly #waiting = new Map<number, Waiting>();
  #nextId = 1;
  #windowStart = 0;
  #windowCalls = 0;
  #lastCall = 0;
  #idleTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(links: Links, connect: () => Promise<Response>, count: () => void, onReport?: Report) {
    this.#links = links;
    this.#connect = connect;
    this.#count = count;
    this.#onReport = onReport;
  }

  get isOpen(): boolean {
    return this.#socket !== undefined;
  }

  /**
   * `method(...args)` on the callee: over the link when it is open, else `rpc()`. With `cast`,
   * the call may go as a cast and resolve at once with `cast.assumed` (see above).
   */
  call<T>(method: string, args: unknown[], rpc: () => Promise<T>, cast?: { assumed: T }): Promise<T> {
    const now = Date.now();
    this.#lastCall = now;
    const socket = this.#socket;
    if (socket === undefined) {
      if (this.#wanted(now)) void this.#open();
      return rpc();
    }
    const id = this.#nextId;
    this.#nextId = id >= 0xffff_ffff ? 1 : id + 1;
    const asCast = cast !== undefined && this.#castsSinceCall < CAST_SYNC_EVERY - 1;
    const frame = asCast ? encodeCast(id, method, args) : encodeCall(id, method, args);
    if (frame.byteLength > MAX_FRAME_BYTES) return rpc();
    try {
      socket.send(frame);
    } catch {
      // Closed under us, the frame not sent: RPC is safe.
      this.#lost(socket, "send failed");
      return rpc();
    }
    const seq = ++this.#sent;
    if (asCast) {
      this.#castsSinceCall++;
      if (this.#onReport) this.#casts.set(id, { method, seq });
      return Promise.resolve(cast.assumed);
    }
    if (cast !== undefined) this.#castsSinceCall = 0;
    return new Promise<T>((resolve, reject) => this.#waiting.set(id, { resolve: resolve as (v: unknown) => void, reject, seq }));
  }

  /** Whether the calls of the last second warrant a link. */
  #wanted(now: number): boolean {
    const { minRate, maxOpen } = this.#links.options;
    if (this.#opening || now < this.#retryAt || this.#links.open >= maxOpen) return false;
    if (now - this.#windowStart >= 1_000) {
      this.#windowStart = now;
      this.#windowCalls = 0;
    }
    this.#windowCalls++;
    return this.#windowCalls >= minRate;
  }

  async #open(): Promise<void> {
    this.#opening = true;
    this.#links.open++;
    try {
      const response = await this.#connect();
      const ws = response.webSocket;
      if (!ws) throw new Error(`link refused: ${response.status}`);
      ws.accept();
      // Binary messages as ArrayBuffer, not Blob (what a client socket gives at this compatibility date).
      (ws as { binaryType?: string }).binaryType = "arraybuffer";
      ws.addEventListener("message", (event) => this.#onAnswer(ws, event.data));
      ws.addEventListener("close", () => this.#lost(ws, "closed"));
      ws.addEventListener("error", () => this.#lost(ws, "error"));
      this.#socket = ws;
      this.#armIdle();
    } catch (e) {
      console.error("link could not be opened", e);
      this.#links.open--;
      this.#retryAt = Date.now() + RETRY_AFTER_MS;
    } finally {
      this.#opening = false;
    }
  }

  #onAnswer(ws: WebSocket, data: unknown): void {
    this.#count();
    let frame;
    try {
      if (!(data instanceof ArrayBuffer)) throw new Error(`link: answer of type ${Object.prototype.toString.call(data)}`);
      frame = decodeLinkFrame(data);
    } catch (e) {
      console.error("link: bad answer", e);
      this.#lost(ws, "bad answer");
      return;
    }
    const cast = this.#casts.get(frame.id);
    if (cast) {
      // A cast's report: what the callee returned (or the error it threw) when it was worth telling.
      this.#casts.delete(frame.id);
      this.#onReport?.(cast.method, frame.kind === LinkFrameKind.Result ? frame.value : new Error(frame.kind === LinkFrameKind.Error ? frame.message : "?"));
      return;
    }
    const waiting = this.#waiting.get(frame.id);
    if (!waiting) return;
    this.#waiting.delete(frame.id);
    // Frames are handled in order: the casts sent before this call are handled by now, and
    // those with nothing to report never will be (a Map iterates in the order they were sent).
    for (const [id, c] of this.#casts) {
      if (c.seq > waiting.seq) break;
      this.#casts.delete(id);
    }
    if (frame.kind === LinkFrameKind.Result) waiting.resolve(frame.value);
    else if (frame.kind === LinkFrameKind.Error) waiting.reject(new Error(frame.message));
    else waiting.reject(new Error("link: a call where an answer was expected"));
  }

  /** The link is gone: the calls on it fail (their outcome is unknown), the next ones go by RPC. */
  #lost(ws: WebSocket, why: string): void {
    if (this.#socket !== ws) return;
    this.#socket = undefined;
    this.#links.open--;
    if (this.#idleTimer !== undefined) clearTimeout(this.#idleTimer);
    this.#idleTimer = undefined;
    safeClose(ws, 1000, why);
    const error = new Error(`link lost (${why}) with a call in flight`);
    for (const w of this.#waiting.values()) w.reject(error);
    this.#waiting.clear();
    this.#casts.clear();
    this.#castsSinceCall = 0;
  }

  /** Closes the link after idleMs without a call (and none in flight), so the caller can leave memory. */
  #armIdle(): void {
    const { idleMs } = this.#links.options;
    const due = Math.max(0, this.#lastCall + idleMs - Date.now());
    this.#idleTimer = setTimeout(() => {
      const ws = this.#socket;
      if (!ws) return;
      if (this.#waiting.size === 0 && Date.now() - this.#lastCall >= idleMs) this.#lost(ws, "idle");
      else this.#armIdle();
    }, due);
  }
}

/** Link sockets this isolate has seen on the callee's side (tags are read once per socket). */
const known = new WeakMap<WebSocket, boolean>();

export function isLinkSocket(ctx: DurableObjectState, ws: WebSocket): boolean {
  let link = known.get(ws);
  if (link === undefined) known.set(ws, (link = ctx.getTags(ws).includes(LINK_TAG)));
  return link;
}

/** The callee's side of a link's upgrade: a hibernatable socket tagged LINK_TAG. */
export function acceptLink(ctx: DurableObjectState): Response {
  const pair = new WebSocketPair();
  ctx.acceptWebSocket(pair[1], [LINK_TAG]);
  known.set(pair[1], true);
  return new Response(null, { status: 101, webSocket: pair[0] });
}

/**
 * A method a callee offers on its links: `run` (bound), and for a cast, which results are
 * worth an answer (`report`; none when absent). Errors of a cast are reported when `report` is set.
 */
export interface LinkMethod {
  run: (...args: never[]) => Promise<unknown>;
  report?: (value: unknown) => boolean;
}
export type LinkHandlers = Record<string, LinkMethod>;

/**
 * One call or cast from a link: `handlers[method].run(...args)`, answered on the same socket
 * when it settles (as they finish, each with its number; a cast only when `report` says so).
 * A frame that is neither closes the link.
 */
export function answerLinkCall(ws: WebSocket, message: ArrayBuffer | string, handlers: LinkHandlers): void {
  let frame;
  try {
    if (typeof message === "string") throw new Error("text frame");
    frame = decodeLinkFrame(message);
    if (frame.kind !== LinkFrameKind.Call && frame.kind !== LinkFrameKind.Cast) throw new Error("not a call");
  } catch (e) {
    console.error("link: bad call", e);
    safeClose(ws, 1002, "bad link frame");
    return;
  }
  const { id, method, args } = frame;
  const handler = Object.hasOwn(handlers, method) ? handlers[method] : undefined;
  const answer = (bytes: Uint8Array) => void safeSend(ws, [bytes]); // the caller gone: its call failed there
  if (!handler) return answer(encodeError(id, `no method ${method}`));
  const isCast = frame.kind === LinkFrameKind.Cast;
  const { report } = handler;
  (handler.run as (...a: unknown[]) => Promise<unknown>)(...args).then(
    (value) => {
      if (!isCast || report?.(value)) answer(encodeResult(id, value));
    },
    (e: unknown) => {
      if (isCast) console.error(`link: cast ${method} failed`, e);
      if (!isCast || report) answer(encodeError(id, e instanceof Error ? e.message : String(e)));
    },
  );
}
