/**
 * Device identity from a client certificate, where Cloudflare's mutual TLS verified one
 * (`request.cf.tlsClientAuth`). CLIENT_CERT_USERS maps a certificate to a user name, by the
 * lower-case hex SHA-256 fingerprint of the certificate or by its subject DN, e.g.
 * `{"5f1e...c3": "sensor-17", "CN=gateway-2,O=Acme": "gateway-2"}`. The Worker looks the
 * certificate up at the upgrade and hands the user name to the object in CERT_USER_HEADER
 * (after deleting any such header the client sent); the object authenticates with it.
 */
import type { Env } from "../env";

/** The request header by which the Worker tells the object the certificate's user name. */
export const CERT_USER_HEADER = "X-Edge-MQTT-Certificate-User";

/** The part of `request.cf` read here (a crafted object in tests). */
export interface CertificateCf {
  tlsClientAuth?: {
    certPresented?: string;
    certVerified?: string;
    certRevoked?: string;
    certFingerprintSHA256?: string;
    certSubjectDN?: string;
    certSubjectDNRFC2253?: string;
  } | null;
}

interface CertificateUsers {
  source: string;
  byFingerprint: Map<string, string>;
  bySubject: Map<string, string>;
}

/** The mapping of this isolate's CLIENT_CERT_USERS, parsed once. */
let users: CertificateUsers | undefined;

/**
 * The user name of a verified, unrevoked client certificate that CLIENT_CERT_USERS maps; the
 * fingerprint is looked up first, then the subject DN. Undefined when no certificate was
 * presented, it did not verify, or it is not mapped.
 */
export function certificateUser(cf: CertificateCf | undefined | null, env: Pick<Env, "CLIENT_CERT_USERS">): string | undefined {
  const auth = cf?.tlsClientAuth;
  if (!auth || auth.certPresented !== "1" || auth.certVerified !== "SUCCESS" || auth.certRevoked === "1") return undefined;
  const map = usersFor(env.CLIENT_CERT_USERS);
  if (map.byFingerprint.size === 0 && map.bySubject.size === 0) return undefined;
  const fingerprint = normalFingerprint(auth.certFingerprintSHA256 ?? "");
  const byPrint = fingerprint === undefined ? undefined : map.byFingerprint.get(fingerprint);
  if (byPrint !== undefined) return byPrint;
  for (const subject of [auth.certSubjectDN, auth.certSubjectDNRFC2253]) {
    const user = subject ? map.bySubject.get(subject) : undefined;
    if (user !== undefined) return user;
  }
  return undefined;
}

/** The certificate user the Worker put on a request for an object (empty: none). */
export function certificateUserOf(headers: Headers): string | undefined {
  const user = headers.get(CERT_USER_HEADER);
  return user === null || user === "" ? undefined : user;
}

function usersFor(setting: string | undefined): CertificateUsers {
  const source = setting ?? "";
  if (users?.source === source) return users;
  users = { source, byFingerprint: new Map(), bySubject: new Map() };
  if (source.trim() === "") return users;
  let parsed: unknown;
  try {
    parsed = JSON.parse(source);
  } catch (e) {
    console.error(`CLIENT_CERT_USERS is not JSON: ${e instanceof Error ? e.message : String(e)}`);
    return users;
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    console.error("CLIENT_CERT_USERS must be a JSON object: fingerprint or subject DN -> user name");
    return users;
  }
  for (const [key, user] of Object.entries(parsed)) {
    if (typeof user !== "string" || user === "") {
      console.error(`CLIENT_CERT_USERS: the user name of "${key}" must be a non-empty string; ignored`);
      continue;
    }
    const fingerprint = normalFingerprint(key);
    if (fingerprint !== undefined) users.byFingerprint.set(fingerprint, user);
    else users.bySubject.set(key, user);
  }
  return users;
}

/** A SHA-256 fingerprint as Cloudflare gives it (64 lower-case hex digits), also from `AB:CD:...`. */
function normalFingerprint(text: string): string | undefined {
  const hex = text.replace(/:/g, "").toLowerCase();
  return /^[0-9a-f]{64}$/.test(hex) ? hex : undefined;
}
