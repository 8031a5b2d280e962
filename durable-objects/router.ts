import { shardOfTopic, shardsForFilter } from "../core/topics";
import type { Delivery, Message, SubscribeRequest } from "../core/session/types";
import type { Env } from "../worker/env";
import { Batcher } from "../core/util/batcher";
import { messageSize } from "../core/session/outbound";
import { RPC_CALL_BYTES, shardCountFromEnv, shardName } from "./config";
import type { TopicShardDO } from "./topic-shard";
import { linkRequest, type Links } from "./link";

/** A message on its way to a shard, with when its publisher's session received it. */
interface Routed {
  message: Message;
  receivedAt?: number;
}

/**
 * A session's view of the topic space: which TopicShard object holds a topic or a filter.
 * Publishes to one shard go through one queue with one call in flight, so they arrive in
 * order (per-topic order) and a fast publisher's messages share calls.
 */
export class Router {
  readonly #env: Env;
  readonly #shardCount: number;
  readonly #stubs = new Map<number, DurableObjectStub<TopicShardDO>>();
  readonly #publishQueues = new Map<number, Batcher<Routed, number>>();
  readonly #links: Links | undefined;

  /** `links`: the session's links (durable-objects/link.ts); without, every publish call is an RPC. */
  constructor(env: Env, links?: Links) {
    this.#env = env;
    this.#shardCount = shardCountFromEnv(env);
    this.#links = links;
  }

  #shard(index: number) {
    let stub = this.#stubs.get(index);
    if (!stub) {
      stub = this.#env.SHARDS.get(this.#env.SHARDS.idFromName(shardName(index)));
      this.#stubs.set(index, stub);
    }
    return stub;
  }

  /**
   * Publish into the topic space; resolves with the number of sessions that accepted it.
   * `receivedAt`: when the publisher's session received it (the shard's time when absent).
   */
  publish(message: Message, receivedAt?: number): Promise<number> {
    const index = shardOfTopic(message.topic, this.#shardCount);
    let queue = this.#publishQueues.get(index);
    if (!queue) {
      const shard = this.#shard(index);
      const link = this.#links?.to(() => shard.fetch(linkRequest()));
      queue = new Batcher(
        async (items: Routed[]) => {
          const messages = items.map((i) => i.message);
          const receivedAt = items.map((i) => i.receivedAt ?? null);
          const rpc = () => shard.publishBatch(messages, receivedAt);
          // One QoS 0 message: nobody waits for its count (no PUBACK), so on a link it may go as a
          // cast. More than one means messages queued behind the last call: calls then, whose
          // answer's wait lets the next batch grow (casts would send each turn's alone).
          const cast = messages.length === 1 && messages[0]!.qos === 0 ? { assumed: [{ matched: 0 }] } : undefined;
          return (await (link ? link.call("publishBatch", [messages, receivedAt], rpc, cast) : rpc())).map((r) => r.matched);
        },
        512,
        (item) => messageSize(item.message),
        RPC_CALL_BYTES,
      );
      this.#publishQueues.set(index, queue);
    }
    return queue.push(receivedAt === undefined ? { message } : { message, receivedAt });
  }

  /**
   * Register subscriptions on every shard they concern; resolves with the retained messages to
   * send. `receivedAt`: when the session received the SUBSCRIBE, `connectedAt`: when its
   * connection began; each shard replays what it routed from then on (core/session/recent.ts).
   */
  async subscribe(clientId: string, requests: SubscribeRequest[], receivedAt?: number, connectedAt?: number): Promise<Delivery[]> {
    const perShard = new Map<number, SubscribeRequest[]>();
    for (const request of requests) {
      for (const shard of shardsForFilter(request.subscription.filter, this.#shardCount)) {
        let list = perShard.get(shard);
        if (!list) perShard.set(shard, (list = []));
        list.push(request);
      }
    }
    const results = await Promise.all([...perShard].map(([shard, list]) => this.#shard(shard).subscribe(clientId, list, receivedAt, connectedAt)));
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
