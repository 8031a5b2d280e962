export { BURST_SECONDS, PublishLimiter, TokenBucket, type PublishRateLimits, type RateRefusal } from "./rate";
