export { isSharedFilter, parseSharedFilter, subscriptionMatches, topicMatches } from "./match";
export { SubscriptionTrie, type SubscriptionMatch } from "./trie";
export { SharedGroups, type SharedGroupsState } from "./shared";
export { fmix32, fnv1a32, hasWildcard, shardOfTopic, shardsForFilter, topicHash } from "./shard";
export {
  DEFAULT_TOPIC_LIMITS,
  checkTopicFilterLimits,
  checkTopicNameLimits,
  countLevels,
  type TopicLimits,
} from "./limits";
export { utf8ByteLength } from "./utf8";
export { prefixUpperBound, retainedLookup, type RetainedLookup, type TopicRange } from "./retained-range";
