import type { Message } from "../../core/session/types";
import { retainedLookup, retainedScan, segmentAfter, selectRow, topicMatches } from "../../core/topics";
import { decodeJson, encodeJson } from "./json";
import type { SqlExec } from "./sql-session-store";

/**
 * A shard's retained messages in Durable Object SQLite, keyed by topic (the PRIMARY KEY, BINARY
 * collation: UTF-8 byte order, the order of retainedLookup's ranges). `updated_at` is when the
 * message was stored, `publisher` the client identifier that published it (null for HTTP
 * ingest), `size` its payload bytes: the admin API reads them without decoding `message`.
 */
const SCHEMA = `CREATE TABLE IF NOT EXISTS retained (topic TEXT PRIMARY KEY, message TEXT NOT NULL, expires_at INTEGER, updated_at INTEGER NOT NULL, publisher TEXT, size INTEGER NOT NULL DEFAULT 0)`;

/** Rows walked per statement of a scan: a page of the index, bounded in memory (no `message` column). */
const CHUNK_ROWS = 500;
/** Rows one list call walks at most: a sparse filter (`+/x` over a million topics) answers a short page, with a cursor. */
export const LIST_WALK_ROWS = 10_000;
/** Payload bytes one list call returns at most (at least one message): far below the 32 MiB RPC limit. */
export const LIST_PAYLOAD_BYTES = 4 * 1024 * 1024;
/** Rows one clear call walks at most, so one call (one turn of the shard) stays short. */
export const CLEAR_WALK_ROWS = 5_000;

/** One retained message as the admin API shows it. */
export interface RetainedInfo {
  topic: string;
  message: Message;
  /** Epoch ms when it was stored. */
  storedAt: number;
  /** Epoch ms when it expires (Message Expiry Interval), or null. */
  expiresAt: number | null;
  publisher: string | null;
  /** Payload bytes. */
  size: number;
}

/** A selection of retained messages: a topic filter, an age cutoff. */
export interface RetainedSelection {
  filter: string;
  /** Only messages stored at or before this epoch ms (undefined: any age). */
  cutoff?: number | undefined;
  /** Resume after this topic (a cursor). */
  after?: string | undefined;
}

export interface ListPage {
  items: RetainedInfo[];
  /** The last topic walked: the next page starts after it. */
  last: string | undefined;
  /** Nothing left to walk for this selection. */
  done: boolean;
}

export interface ClearResult {
  matched: number;
  cleared: number;
  last: string | undefined;
  done: boolean;
}

interface WalkRow {
  topic: string;
  updated_at: number;
  expires_at: number | null;
}

interface FullRow extends WalkRow {
  message: string;
  publisher: string | null;
  size: number;
}

/**
 * The retained store of one shard. Keeps the number of messages in memory (one COUNT(*) when
 * the object starts, then +1 / -1 as rows come and go), so a publish never counts rows.
 */
export class RetainedStore {
  readonly #sql: SqlExec;
  #count: number;

  constructor(sql: SqlExec) {
    this.#sql = sql;
    sql.exec(SCHEMA);
    const columns = new Set(this.#rows<{ name: string }>(`SELECT name FROM pragma_table_info('retained')`).map((r) => r.name));
    // Stored before the admin API: fill publisher and size from the message itself, once.
    if (!columns.has("publisher")) sql.exec(`ALTER TABLE retained ADD COLUMN publisher TEXT`);
    if (!columns.has("size")) {
      sql.exec(`ALTER TABLE retained ADD COLUMN size INTEGER NOT NULL DEFAULT 0`);
      // The payload is {"$b64": "<padded base64>"} in the JSON (storage/json.ts).
      sql.exec(
        `UPDATE retained SET publisher = json_extract(message, '$.origin'), size = (SELECT length(b) * 3 / 4 - (CASE WHEN b LIKE '%==' THEN 2 WHEN b LIKE '%=' THEN 1 ELSE 0 END) FROM (SELECT coalesce(json_extract(message, '$.payload."$b64"'), '') AS b))`,
      );
    }
    this.#count = this.#rows<{ n: number }>(`SELECT COUNT(*) AS n FROM retained`)[0]?.n ?? 0;
  }

  #rows<T>(query: string, ...bindings: unknown[]): T[] {
    return this.#sql.exec(query, ...bindings).toArray() as T[];
  }

  /** Retained messages stored on this shard. */
  get count(): number {
    return this.#count;
  }

  /**
   * Stores the retained message of a topic, replacing the previous one [MQTT-3.3.1-5]. A new
   * topic is one insert; a replaced one is an insert that does nothing and an update in place
   * (the topic index entry is not rewritten, unlike INSERT OR REPLACE's delete and insert).
   */
  put(message: Message, now: number): void {
    // Without the QoS 2 message identifier: a retained replay is a new delivery each time, and
    // a session that took the live message in must not drop it as a copy.
    const { messageId: _live, ...stored } = message;
    const values = [encodeJson(stored), message.expiresAt ?? null, now, message.origin ?? null, message.payload.byteLength];
    const inserted = this.#rows(
      `INSERT INTO retained (topic, message, expires_at, updated_at, publisher, size) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (topic) DO NOTHING RETURNING 1 AS x`,
      message.topic,
      ...values,
    );
    if (inserted.length > 0) {
      this.#count++;
      return;
    }
    this.#sql.exec(`UPDATE retained SET message = ?, expires_at = ?, updated_at = ?, publisher = ?, size = ? WHERE topic = ?`, ...values, message.topic);
  }

  /** Deletes one topic's retained message; whether there was one. */
  delete(topic: string): boolean {
    const gone = this.#rows(`DELETE FROM retained WHERE topic = ? RETURNING 1 AS x`, topic).length > 0;
    if (gone) this.#count--;
    return gone;
  }

  /** Deletes one topic's retained message; whether there was one that had not expired [MQTT-3.3.2-5]. */
  deleteLive(topic: string, now: number): boolean {
    const row = this.#rows<{ expires_at: number | null }>(`DELETE FROM retained WHERE topic = ? RETURNING expires_at`, topic)[0];
    if (!row) return false;
    this.#count--;
    return row.expires_at === null || row.expires_at > now;
  }

  /**
   * The rows a filter can match, through the primary key index: an exact lookup and/or range
   * scans under the filter's literal levels (the SUBSCRIBE path: one statement per range).
   */
  *candidates(filter: string): Generator<{ topic: string; message: string; expires_at: number | null }> {
    const { exact, ranges } = retainedLookup(filter);
    const select = `SELECT topic, message, expires_at FROM retained`;
    if (exact !== undefined) yield* this.#rows<FullRow>(`${select} WHERE topic = ?`, exact);
    for (const { low, high } of ranges) {
      yield* high === undefined
        ? this.#rows<FullRow>(`${select} WHERE topic >= ?`, low)
        : this.#rows<FullRow>(`${select} WHERE topic >= ? AND topic < ?`, low, high);
    }
  }

  /** One topic's retained message, unless none or expired (an expired one is removed [MQTT-3.3.2-5]). */
  get(topic: string, now: number): RetainedInfo | undefined {
    const row = this.#rows<FullRow>(`SELECT topic, message, expires_at, updated_at, publisher, size FROM retained WHERE topic = ?`, topic)[0];
    if (!row) return undefined;
    if (row.expires_at !== null && row.expires_at <= now) {
      this.delete(topic);
      return undefined;
    }
    return info(row);
  }

  /**
   * A page of the selection in topic order (UTF-8 byte order): at most `limit` messages and
   * LIST_PAYLOAD_BYTES of payload, after walking at most LIST_WALK_ROWS rows. Expired messages
   * met on the way are removed, not listed [MQTT-3.3.2-5].
   */
  list(selection: RetainedSelection, limit: number, now: number): ListPage {
    const items: RetainedInfo[] = [];
    let bytes = 0;
    let walked = 0;
    let last: string | undefined;
    const matches = (topic: string): boolean => topicMatches(selection.filter, topic);
    for (const row of this.#walk(selection.filter, selection.after)) {
      walked++;
      last = row.topic;
      const verdict = selectRow({ topic: row.topic, storedAt: row.updated_at, expiresAt: row.expires_at }, { matches, cutoff: selection.cutoff, now });
      if (verdict === "expired") this.delete(row.topic);
      else if (verdict === "take") {
        const full = this.#rows<FullRow>(`SELECT topic, message, expires_at, updated_at, publisher, size FROM retained WHERE topic = ?`, row.topic)[0];
        if (full) {
          items.push(info(full));
          bytes += full.size;
          if (items.length >= limit || bytes >= LIST_PAYLOAD_BYTES) return { items, last, done: false };
        }
      }
      if (walked >= LIST_WALK_ROWS) return { items, last, done: false };
    }
    return { items, last, done: true };
  }

  /**
   * Deletes (or with `dryRun` only counts) the messages of the selection, walking at most
   * CLEAR_WALK_ROWS rows; call again from `last` until `done`. Expired messages met on the way
   * are removed and not counted: they were no longer retained [MQTT-3.3.2-5].
   */
  clear(selection: RetainedSelection, dryRun: boolean, now: number, walkRows = CLEAR_WALK_ROWS): ClearResult {
    let matched = 0;
    let cleared = 0;
    let walked = 0;
    let last: string | undefined;
    const matches = (topic: string): boolean => topicMatches(selection.filter, topic);
    for (const row of this.#walk(selection.filter, selection.after)) {
      walked++;
      last = row.topic;
      const verdict = selectRow({ topic: row.topic, storedAt: row.updated_at, expiresAt: row.expires_at }, { matches, cutoff: selection.cutoff, now });
      if (verdict === "expired") this.delete(row.topic);
      else if (verdict === "take") {
        matched++;
        if (!dryRun && this.delete(row.topic)) cleared++;
      }
      if (walked >= walkRows) return { matched, cleared, last, done: false };
    }
    return { matched, cleared, last, done: true };
  }

  /**
   * Rows a selection can match, in ascending topic order, after `after`: retainedScan's
   * segments read CHUNK_ROWS at a time through the primary key index, so memory stays
   * bounded and a caller that stops early reads no further.
   */
  *#walk(filter: string, after: string | undefined): Generator<WalkRow> {
    const select = `SELECT topic, updated_at, expires_at FROM retained`;
    for (const segment of retainedScan(filter)) {
      let start = segmentAfter(segment, after);
      if (start === undefined) continue;
      if (segment.exact) {
        yield* this.#rows<WalkRow>(`${select} WHERE topic = ?`, segment.low);
        continue;
      }
      // One lower bound per statement, so each chunk seeks to where the previous one ended.
      const upper = segment.high === undefined ? "" : ` AND topic < ?`;
      const bound = segment.high === undefined ? [] : [segment.high];
      while (start) {
        const chunk: WalkRow[] = this.#rows<WalkRow>(
          `${select} WHERE topic ${start.inclusive ? ">=" : ">"} ?${upper} ORDER BY topic LIMIT ${CHUNK_ROWS}`,
          start.from,
          ...bound,
        );
        yield* chunk;
        start = chunk.length < CHUNK_ROWS ? undefined : { from: chunk[chunk.length - 1]!.topic, inclusive: false };
      }
    }
  }
}

function info(row: FullRow): RetainedInfo {
  return {
    topic: row.topic,
    message: decodeJson<Message>(row.message),
    storedAt: row.updated_at,
    expiresAt: row.expires_at,
    publisher: row.publisher,
    size: row.size,
  };
}
