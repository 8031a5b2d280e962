/**
 * HTTP API keys under the ACL rules that govern MQTT clients: an ingest item is a PUBLISH by
 * the key's principal.
 *
 * - A rule names a key by user name `key:<key id>` (the id `keys list` shows; a key's name is
 *   free text an operator may reuse, its id is not). Its client identifier is the device the
 *   item names, else the device the key was issued to, else `api-key:<key id>`, so a rule's
 *   `clientid` and `%c` work as for an MQTT client.
 * - A key's scopes are to it what a token's `acl` claim (`pub`) is to a JWT principal: outside
 *   them denied whatever the rules say; inside them allowed unless a rule denies it. So a DENY
 *   rule (for the key, its device, or everyone) closes a topic to keys as to clients, and a
 *   key keeps working within its scopes when ALLOW_ANONYMOUS is off, with no rule to add.
 */
import type { Authorizer, Principal } from "../policy/types";

/** The user name ACL rules name an API key by. */
export function apiKeyUsername(keyId: string): string {
  return `key:${keyId}`;
}

/** Who an ingest item with an API key publishes as, for the ACL. */
export function apiKeyPrincipal(keyId: string, device: string | undefined, scopes?: string[]): Principal {
  return {
    method: "api-key",
    username: apiKeyUsername(keyId),
    clientId: device ?? `api-key:${keyId}`,
    ...(scopes !== undefined && { claims: { publish: scopes } }),
  };
}

/** The ACL check of an ingest policy: the rules, and who the caller publishes as. */
export interface IngestAcl {
  authorizer: Authorizer;
  keyId: string;
  /** The key's scopes (pass the same array for every item: the policy caches by it). */
  scopes?: string[];
}

/** Undefined when the ACL lets the key publish `topic` as `device`, else why not. */
export function aclRefusal(acl: IngestAcl, topic: string, device: string | undefined): string | undefined {
  const principal = apiKeyPrincipal(acl.keyId, device, acl.scopes);
  if (acl.authorizer.authorizePublish(principal, topic)) return undefined;
  return `The ACL denies API key ${acl.keyId} (user name ${JSON.stringify(principal.username)}, client ${JSON.stringify(principal.clientId)}) publishing to ${JSON.stringify(topic)}.`;
}
