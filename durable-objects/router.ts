import { shardOfTopic, shardsForFilter } from "../core/topics";
import type { Delivery, Message, SubscribeRequest } from "../core/session/types";
import type { Env } from "../worker/env";
import { Batcher } from "../core/util/batcher";
import { messageSize } from "../core/session/outbound";
import { RPC_CALL_BYTES, shardCountFromEnv, shardName } from "./config";
import type { TopicShardDO } from "./topic-shard";

/**
 * A session's view of the topic space: which TopicShard object holds a topic or a filter.
 * Publishes to one shard go through one queue with one call in flight, so they arrive in
 * order (per-topic order) and a fast publisher's messages share calls.
 */
export class Router {
  readonly #env: Env;
  readonly #shardCount: number;
  readonly #stubs = new Map<number, DurableObjectStub<TopicShardDO>>();
  readonly #publishQueues = new Map<number, Batcher<Message, number>>();

  constructor(env: Env) {
    this.#env = env;
    this.#shardCount = shardCountFromEnv(env);
  }

  #shard(index: number) {
    let stub = this.#stubs.get(index);
    if (!stub) {
      stub = this.#env.SHARDS.get(this.#env.SHARDS.idFromName(shardName(index)));
      this.#stubs.set(index, stub);
    }
    return stub;
  }

  /** Publish into the topic space; resolves with the number of sessions that accepted it. */
  publish(message: Message): Promise<number> {
    const index = shardOfTopic(message.topic, this.#shardCount);
    let queue = this.#publishQueues.get(index);
    if (!queue) {
      const shard = this.#shard(index);
      queue = new Batcher(
        async (messages: Message[]) => (await shard.publishBatch(messages)).map((r) => r.matched),
        512,
        messageSize,
        RPC_CALL_BYTES,
      );
      this.#publishQueues.set(index, queue);
    }
    return queue.push(message);
  }

  /** Register subscriptions on every shard they concern; resolves with the retained messages to send. */
  async subscribe(clientId: string, requests: SubscribeRequest[]): Promise<Delivery[]> {
    const perShard = new Map<number, SubscribeRequest[]>();
    for (const request of requests) {
      for (const shard of shardsForFilter(request.subscription.filter, this.#shardCount)) {
        let list = perShard.get(shard);
        if (!list) perShard.set(shard, (list = []));
        list.push(request);
      }
    }
    const results = await Promise.all([...perShard].map(([shard, list]) => this.#shard(shard).subscribe(clientId, list)));
    // RPC typing widens tuples (user properties) to arrays; the values are what the shards built.
    return results.flat() as Delivery[];
  }

  async unsubscribe(clientId: string, filters: string[]): Promise<void> {
    const perShard = new Map<number, string[]>();
    for (const filter of filters) {
      for (const shard of shardsForFilter(filter, this.#shardCount)) {
        let list = perShard.get(shard);
        if (!list) perShard.set(shard, (list = []));
        list.push(filter);
      }
    }
    await Promise.all([...perShard].map(([shard, list]) => this.#shard(shard).unsubscribe(clientId, list)));
  }
}
