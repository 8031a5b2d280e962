import { decodeCursor, encodeCursor, olderThanCutoff, retainedShards, shardOfTopic, type RetainedCursor } from "../core/topics";
import type { Env } from "../worker/env";
import { shardCountFromEnv, shardName } from "./config";
import type { RetainedInfo, RetainedSelection } from "./storage/retained-store";

/**
 * Operations on the retained messages of every shard, for the admin API (worker/routes/api/
 * retained.ts) and device decommissioning: each goes to the shards the filter can touch (an
 * exact topic: its own shard; a wildcard filter: every shard) and answers with totals.
 */

export type { RetainedInfo };

function shard(env: Env, index: number) {
  return env.SHARDS.get(env.SHARDS.idFromName(shardName(index)));
}

/** A cursor that is malformed, or was made for another filter or shard count. */
export class InvalidCursorError extends Error {
  constructor() {
    super("The cursor is not one this listing gave out (or the filter or the shard count changed).");
  }
}

export interface ListOptions {
  filter: string;
  olderThanSeconds?: number | undefined;
  cursor?: string | undefined;
  limit: number;
}

export interface ListResult {
  items: RetainedInfo[];
  /** Undefined when the listing is complete. */
  nextCursor: string | undefined;
}

/**
 * A page of the retained messages matching `filter` (and older than `olderThanSeconds`), across
 * shards in shard order, each shard in topic order (UTF-8 byte order). A page holds at most
 * `limit` messages; it may hold fewer and still have a next cursor (a shard walks a bounded
 * number of rows and bytes per call). Throws InvalidCursorError for a foreign cursor.
 */
export async function listRetained(env: Env, options: ListOptions): Promise<ListResult> {
  const shardCount = shardCountFromEnv(env);
  const shards = retainedShards(options.filter, shardCount);
  let position: RetainedCursor = { shard: shards[0]!, after: undefined };
  if (options.cursor !== undefined) {
    const decoded = decodeCursor(options.cursor, options.filter, shardCount);
    if (!decoded) throw new InvalidCursorError();
    position = decoded;
  }
  const cutoff = olderThanCutoff(Date.now(), options.olderThanSeconds);
  const items: RetainedInfo[] = [];
  for (const index of shards) {
    if (index < position.shard) continue;
    const selection: RetainedSelection = {
      filter: options.filter,
      cutoff,
      after: index === position.shard ? position.after : undefined,
    };
    const page = await shard(env, index).retainedList(selection, options.limit - items.length);
    items.push(...(page.items as RetainedInfo[]));
    if (!page.done) return { items, nextCursor: encodeCursor({ shard: index, after: page.last }, options.filter, shardCount) };
    const next = shards[shards.indexOf(index) + 1];
    if (items.length >= options.limit) {
      return { items, nextCursor: next === undefined ? undefined : encodeCursor({ shard: next, after: undefined }, options.filter, shardCount) };
    }
  }
  return { items, nextCursor: undefined };
}

/** One topic's retained message (from its shard), or undefined. */
export async function getRetained(env: Env, topic: string): Promise<RetainedInfo | undefined> {
  const found = await shard(env, shardOfTopic(topic, shardCountFromEnv(env))).retainedGet(topic);
  return (found as RetainedInfo | null) ?? undefined;
}

/** Deletes one topic's retained message; whether there was one. */
export async function deleteRetained(env: Env, topic: string): Promise<boolean> {
  return shard(env, shardOfTopic(topic, shardCountFromEnv(env))).retainedDelete(topic);
}

export interface ClearOptions {
  olderThanSeconds?: number | undefined;
  /** Only count what would be cleared. */
  dryRun?: boolean | undefined;
}

export interface ClearSummary {
  /** Messages selected (what a dry run would clear). */
  matched: number;
  /** Messages deleted (0 in a dry run). */
  cleared: number;
  /** Shards asked. */
  shards: number;
}

/**
 * Clears the retained messages matching `filter` (MQTT matching: `#` does not reach `$`
 * topics [MQTT-4.7.2-1]) and older than `olderThanSeconds`, on every shard the filter can
 * touch, in parallel; each shard in bounded calls.
 */
export async function clearRetained(env: Env, filter: string, options: ClearOptions = {}): Promise<ClearSummary> {
  return clearOn(env, retainedShards(filter, shardCountFromEnv(env)), filter, options);
}

/**
 * The stale sweep, now: clears the retained messages stored more than `olderThanSeconds` ago
 * on every topic but the `$` ones (filter `#`: those the broker keeps up itself), every shard.
 */
export async function sweepRetained(env: Env, olderThanSeconds: number, dryRun: boolean): Promise<ClearSummary> {
  return clearRetained(env, "#", { olderThanSeconds, dryRun });
}

async function clearOn(env: Env, shards: number[], filter: string, options: ClearOptions): Promise<ClearSummary> {
  const cutoff = olderThanCutoff(Date.now(), options.olderThanSeconds);
  const dryRun = options.dryRun ?? false;
  const perShard = await Promise.all(
    shards.map(async (index) => {
      const stub = shard(env, index);
      let matched = 0;
      let cleared = 0;
      let after: string | undefined;
      for (;;) {
        const r = await stub.retainedClear({ filter, cutoff, after }, dryRun);
        matched += r.matched;
        cleared += r.cleared;
        if (r.done) return { matched, cleared };
        after = r.last;
      }
    }),
  );
  return {
    matched: perShard.reduce((n, r) => n + r.matched, 0),
    cleared: perShard.reduce((n, r) => n + r.cleared, 0),
    shards: shards.length,
  };
}
