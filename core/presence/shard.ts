import { fmix32, fnv1a32 } from "../topics/shard";

/** The presence shard of a client identifier: the same hash as the topic shards, modulo PRESENCE_SHARDS. */
export function presenceShardOf(clientId: string, shards: number): number {
  return fmix32(fnv1a32(clientId)) % Math.max(1, shards);
}
