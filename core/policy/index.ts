export { BURST_SECONDS, PublishLimiter, TokenBucket, type PublishRateLimits, type RateRefusal } from "./rate";
export type { AclAction, AclRule, AuthMethod, Authorizer, Principal } from "./types";
export { AclPolicy, aclRuleProblem, topicFilterProblem, type AclOptions } from "./acl";
export {
  authMethodOf,
  connackRefusal,
  looksLikeJwt,
  principalFromClaims,
  type ClaimNames,
  type ConnectRefusal,
} from "./authenticate";
export { FailurePenalties, type PenaltyOptions } from "./penalty";
