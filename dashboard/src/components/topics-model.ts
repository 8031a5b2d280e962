/**
 * The topic tree's memory: one node per topic level, the last message per topic, message counts
 * per subtree and the last numeric values per topic (for the sparkline). Bounded: at most
 * `maxTopics` topics are kept (messages on further new topics are counted but not stored), at
 * most `maxValues` numbers per topic, and at most `maxPayloadBytes` of each last payload.
 */
import type { MqttMessage } from "../mqtt";

export interface LastMessage {
  /** The first maxPayloadBytes bytes of the payload. */
  payload: Uint8Array;
  /** The payload's full size in bytes. */
  size: number;
  /** UTF-8 text, or undefined when the payload is not valid UTF-8 (binary). */
  text: string | undefined;
  /** Pretty-printed JSON when the text is a JSON object or array. */
  json: string | undefined;
  qos: 0 | 1 | 2;
  retain: boolean;
  /** Date.now() at arrival. */
  at: number;
  properties: MqttMessage["properties"];
}

export interface TopicNode {
  /** This level's name ("" for an empty level). */
  name: string;
  /** The topic up to this level. */
  path: string;
  depth: number;
  children: Map<string, TopicNode>;
  /** The last message on exactly this topic, if any arrived. */
  last: LastMessage | undefined;
  /** Messages on exactly this topic. */
  count: number;
  /** Messages on this topic and every topic below it. */
  total: number;
  /** Topics (with a message) in this subtree, this one included. */
  topics: number;
  /** The last numeric values on this topic, oldest first. */
  values: number[];
}

export interface TopicStoreLimits {
  maxTopics: number;
  maxValues: number;
  maxPayloadBytes: number;
}

export const DEFAULT_LIMITS: TopicStoreLimits = { maxTopics: 5_000, maxValues: 50, maxPayloadBytes: 16 * 1024 };

function node(name: string, path: string, depth: number): TopicNode {
  return { name, path, depth, children: new Map(), last: undefined, count: 0, total: 0, topics: 0, values: [] };
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** The number a payload stands for: a plain decimal number, or a JSON number. */
export function numericValue(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const t = text.trim();
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(t)) return undefined;
  const n = Number(t);
  return Number.isFinite(n) ? n : undefined;
}

/** Pretty JSON for an object or array payload; undefined for anything else. */
export function prettyJson(text: string | undefined): string | undefined {
  if (text === undefined) return undefined;
  const t = text.trim();
  if (!(t.startsWith("{") || t.startsWith("["))) return undefined;
  try {
    return JSON.stringify(JSON.parse(t), null, 2);
  } catch {
    return undefined;
  }
}

export class TopicStore {
  readonly root: TopicNode = node("", "", -1);
  /** Messages received in all. */
  received = 0;
  /** Messages on new topics not kept because the store was full. */
  dropped = 0;

  constructor(readonly limits: TopicStoreLimits = DEFAULT_LIMITS) {}

  get topicCount(): number {
    return this.root.topics;
  }

  get capped(): boolean {
    return this.dropped > 0;
  }

  add(message: MqttMessage, now = Date.now()): void {
    this.received += 1;
    const levels = message.topic.split("/");
    // Find the chain of nodes, creating what is missing only if the topic can be kept.
    let existing: TopicNode | undefined = this.root;
    for (const level of levels) {
      existing = existing.children.get(level);
      if (!existing) break;
    }
    const isNew = !existing || existing.last === undefined;
    if (isNew && this.root.topics >= this.limits.maxTopics) {
      this.dropped += 1;
      return;
    }
    const chain: TopicNode[] = [this.root];
    let at = this.root;
    levels.forEach((level, i) => {
      let child = at.children.get(level);
      if (!child) {
        child = node(level, levels.slice(0, i + 1).join("/"), i);
        at.children.set(level, child);
      }
      chain.push(child);
      at = child;
    });
    const leaf = at;
    for (const n of chain) {
      n.total += 1;
      if (isNew) n.topics += 1;
    }
    leaf.count += 1;
    const size = message.payload.byteLength;
    const payload = size > this.limits.maxPayloadBytes ? message.payload.slice(0, this.limits.maxPayloadBytes) : message.payload.slice();
    let text: string | undefined;
    try {
      text = utf8.decode(payload);
    } catch {
      // Cut inside a multi-byte character, or binary.
      text = size > payload.byteLength ? new TextDecoder().decode(payload) : undefined;
    }
    leaf.last = {
      payload,
      size,
      text,
      json: size > payload.byteLength ? undefined : prettyJson(text),
      qos: message.qos,
      retain: message.retain,
      at: now,
      properties: message.properties,
    };
    const value = numericValue(text);
    if (value !== undefined) {
      leaf.values.push(value);
      if (leaf.values.length > this.limits.maxValues) leaf.values.splice(0, leaf.values.length - this.limits.maxValues);
    }
  }

  /** The node of a topic, if it is in the tree. */
  find(topic: string): TopicNode | undefined {
    let at: TopicNode | undefined = this.root;
    for (const level of topic.split("/")) {
      at = at.children.get(level);
      if (!at) return undefined;
    }
    return at;
  }

  clear(): void {
    this.root.children.clear();
    this.root.total = 0;
    this.root.topics = 0;
    this.received = 0;
    this.dropped = 0;
  }
}

/** Children sorted by name ($ topics last, like MQTT Explorer lists them). */
export function sortedChildren(n: TopicNode): TopicNode[] {
  return [...n.children.values()].sort((a, b) => {
    const da = a.name.startsWith("$") ? 1 : 0;
    const db = b.name.startsWith("$") ? 1 : 0;
    return da - db || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
  });
}

/** "3 s", "4 min", "2 h" ago. */
export function age(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d`;
}

/** Bytes as hex, 16 a line (for binary payloads). */
export function hexDump(bytes: Uint8Array, max = 256): string {
  const lines: string[] = [];
  const n = Math.min(bytes.byteLength, max);
  for (let i = 0; i < n; i += 16) {
    lines.push(
      [...bytes.slice(i, Math.min(i + 16, n))].map((b) => b.toString(16).padStart(2, "0")).join(" "),
    );
  }
  if (bytes.byteLength > max) lines.push(`… ${bytes.byteLength - max} more bytes`);
  return lines.join("\n");
}

/** Correlation data as text when it is printable UTF-8, else as hex. */
export function bytesText(bytes: Uint8Array | undefined): string | undefined {
  if (bytes === undefined) return undefined;
  try {
    const t = utf8.decode(bytes);
    if (!/[\x00-\x08\x0e-\x1f]/.test(t)) return t;
  } catch {
    // binary
  }
  return `0x${[...bytes].map((b) => b.toString(16).padStart(2, "0")).join("")}`;
}
