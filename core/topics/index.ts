export { isSharedFilter, levelsMatch, parseSharedFilter, subscriptionMatches, topicMatches } from "./match";
export { filterCovers, filtersOverlap } from "./cover";
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
export {
  base64UrlDecode,
  base64UrlEncode,
  compareUtf8,
  decodeCursor,
  encodeCursor,
  olderThanCutoff,
  retainedScan,
  retainedShards,
  segmentAfter,
  selectRow,
  type RetainedCursor,
  type RowVerdict,
  type ScanSegment,
} from "./retained-select";
