// The local TLS certificate of `npm start -- --tls`: a local certificate authority (its own
// key, basicConstraints CA:true, keyCertSign) and a server certificate it signs for localhost,
// 127.0.0.1 and ::1, created on first run under `<state directory>/tls/` and reused afterwards.
// Clients trust the CA file (ca.pem), not the server certificate: paho's
// `tls_set(ca_certs=...)`, MQTT.js's `ca`, Node's NODE_EXTRA_CA_CERTS, curl's --cacert.
//
// Made with @peculiar/x509 on Node's WebCrypto: no `openssl` binary needed (it may be absent),
// nothing downloaded. ECDSA P-256 keys, SHA-256 signatures; the extensions a strict verifier
// (OpenSSL's X509_V_FLAG_X509_STRICT, on in Python >= 3.13's default context) asks for:
// critical basicConstraints and keyUsage, subject and authority key identifiers, SAN, EKU.
import { createPrivateKey, randomBytes, webcrypto, X509Certificate as NodeX509 } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
// @peculiar/x509 resolves its ASN.1 providers through tsyringe, which needs the Reflect
// metadata polyfill loaded first.
import "reflect-metadata";
import * as x509 from "@peculiar/x509";

/** What the certificate is for: the names a local client dials. */
export const SERVER_DNS_NAMES = Object.freeze(["localhost"]);
export const SERVER_IPS = Object.freeze(["127.0.0.1", "::1"]);
/** The CA lives long (it is what clients are told to trust); the server certificate for 397
 * days at most, the limit browsers apply to server certificates. */
export const CA_VALIDITY_DAYS = 3650;
export const SERVER_VALIDITY_DAYS = 397;
/** A server certificate expiring within this many days is replaced on start (same CA). */
export const RENEW_BEFORE_DAYS = 30;

/** @typedef {import("node:crypto").webcrypto.CryptoKey} CryptoKey */
/** @typedef {import("node:crypto").webcrypto.CryptoKeyPair} CryptoKeyPair */

const DAY_MS = 24 * 60 * 60 * 1000;
/** Tolerated clock skew between this machine and a client's: validity starts an hour back. */
const BACKDATE_MS = 60 * 60 * 1000;
const KEY_ALGORITHM = { name: "ECDSA", namedCurve: "P-256" };
const SIGNING_ALGORITHM = { name: "ECDSA", hash: "SHA-256" };

/**
 * @typedef {object} TlsFiles
 * @property {string} dir the directory of the files
 * @property {string} caFile the CA certificate (PEM): what clients trust
 * @property {string} caKeyFile the CA's private key (PEM, mode 0600)
 * @property {string} certFile the server certificate (PEM)
 * @property {string} keyFile the server's private key (PEM, mode 0600)
 * @property {"reused" | "created" | "renewed"} status `created`: a new CA (clients must trust
 *   the new ca.pem); `renewed`: a new server certificate from the existing CA; `reused`: as is
 */

/**
 * The TLS files in `dir`: reused when the CA is valid and the server certificate is valid for
 * more than RENEW_BEFORE_DAYS, issued by that CA and for the local names; otherwise created.
 * @param {string} dir
 * @param {{ now?: Date }} [options]
 * @returns {Promise<TlsFiles>}
 */
export async function ensureTlsFiles(dir, { now = new Date() } = {}) {
  const files = tlsPaths(dir);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const ca = loadCa(files, now);
  if (ca && serverCertificateUsable(files, ca.cert, now)) return { ...files, status: "reused" };

  x509.cryptoProvider.set(/** @type {Parameters<typeof x509.cryptoProvider.set>[0]} */ (/** @type {unknown} */ (webcrypto)));
  let status = /** @type {TlsFiles["status"]} */ ("renewed");
  let caPem;
  let caKey;
  if (ca) {
    caPem = ca.pem;
    caKey = await importPrivateKey(readFileSync(files.caKeyFile, "utf8"));
  } else {
    status = "created";
    const created = await createCa(now);
    caPem = created.pem;
    caKey = created.keys.privateKey;
    writeAtomically(files.caKeyFile, await privateKeyPem(created.keys.privateKey), 0o600);
    writeAtomically(files.caFile, caPem, 0o644);
  }
  const server = await createServerCertificate(new x509.X509Certificate(caPem), caKey, now);
  writeAtomically(files.keyFile, await privateKeyPem(server.keys.privateKey), 0o600);
  writeAtomically(files.certFile, server.pem, 0o644);
  return { ...files, status };
}

/**
 * The file names under `dir`.
 * @param {string} dir
 */
export function tlsPaths(dir) {
  return {
    dir,
    caFile: join(dir, "ca.pem"),
    caKeyFile: join(dir, "ca-key.pem"),
    certFile: join(dir, "server.pem"),
    keyFile: join(dir, "server-key.pem"),
  };
}

/**
 * How to use the CA file, for the console of `npm start -- --tls`.
 * @param {string} caFile
 * @param {{ port: number, host: string }} where
 */
export function tlsUsage(caFile, { port, host }) {
  return [
    `TLS: clients verify the server with the local CA ${caFile}`,
    `  paho (Python):  client = mqtt.Client(transport="websockets"); client.ws_set_options(path="/mqtt"); client.tls_set(ca_certs="${caFile}"); client.connect("${host}", ${port})`,
    `  MQTT.js:        mqtt.connect("wss://${host}:${port}/mqtt", { ca: fs.readFileSync("${caFile}") })`,
    `  curl:           curl --cacert ${caFile} https://${host}:${port}/health`,
    `  npm run admin:  NODE_EXTRA_CA_CERTS=${caFile} npm run admin -- --url https://${host}:${port} stats`,
    `  (mosquitto_sub/_pub take --cafile too, but speak MQTT over TCP only, not over WebSocket: they cannot reach this broker)`,
  ];
}

/**
 * The CA certificate when its files are there, it is a CA, it is valid now and its key
 * belongs to it.
 * @param {ReturnType<typeof tlsPaths>} files
 * @param {Date} now
 * @returns {{ pem: string, cert: NodeX509 } | undefined}
 */
function loadCa(files, now) {
  if (!existsSync(files.caFile) || !existsSync(files.caKeyFile)) return undefined;
  try {
    const pem = readFileSync(files.caFile, "utf8");
    const cert = new NodeX509(pem);
    if (!cert.ca || !validAt(cert, now, 0)) return undefined;
    if (!cert.checkPrivateKey(createPrivateKey(readFileSync(files.caKeyFile, "utf8")))) return undefined;
    return { pem, cert };
  } catch {
    return undefined; // unreadable or damaged: made anew
  }
}

/**
 * @param {ReturnType<typeof tlsPaths>} files
 * @param {NodeX509} ca
 * @param {Date} now
 */
function serverCertificateUsable(files, ca, now) {
  if (!existsSync(files.certFile) || !existsSync(files.keyFile)) return false;
  try {
    const cert = new NodeX509(readFileSync(files.certFile, "utf8"));
    return (
      cert.checkIssued(ca) &&
      cert.verify(ca.publicKey) &&
      validAt(cert, now, RENEW_BEFORE_DAYS) &&
      SERVER_DNS_NAMES.every((name) => cert.checkHost(name) !== undefined) &&
      SERVER_IPS.every((ip) => cert.checkIP(ip) !== undefined) &&
      cert.checkPrivateKey(createPrivateKey(readFileSync(files.keyFile, "utf8")))
    );
  } catch {
    return false;
  }
}

/**
 * @param {NodeX509} cert
 * @param {Date} now
 * @param {number} marginDays valid for at least that many more days
 */
function validAt(cert, now, marginDays) {
  return new Date(cert.validFrom) <= now && new Date(cert.validTo).getTime() > now.getTime() + marginDays * DAY_MS;
}

/** @param {Date} now */
async function createCa(now) {
  const keys = /** @type {CryptoKeyPair} */ (await webcrypto.subtle.generateKey(KEY_ALGORITHM, true, ["sign", "verify"]));
  const name = `CN=edge-mqtt-broker local CA ${randomBytes(4).toString("hex")}, O=edge-mqtt-broker (local development)`;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serialNumber(),
    name,
    notBefore: new Date(now.getTime() - BACKDATE_MS),
    notAfter: new Date(now.getTime() + CA_VALIDITY_DAYS * DAY_MS),
    signingAlgorithm: SIGNING_ALGORITHM,
    keys,
    extensions: [
      // A CA that signs end-entity certificates only (no intermediates under it).
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { keys, pem: cert.toString("pem") };
}

/**
 * @param {x509.X509Certificate} ca
 * @param {CryptoKey} caKey
 * @param {Date} now
 */
async function createServerCertificate(ca, caKey, now) {
  const keys = /** @type {CryptoKeyPair} */ (await webcrypto.subtle.generateKey(KEY_ALGORITHM, true, ["sign", "verify"]));
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serialNumber(),
    subject: "CN=localhost, O=edge-mqtt-broker (local development)",
    issuer: ca.subject,
    notBefore: new Date(now.getTime() - BACKDATE_MS),
    notAfter: new Date(now.getTime() + SERVER_VALIDITY_DAYS * DAY_MS),
    signingAlgorithm: SIGNING_ALGORITHM,
    publicKey: keys.publicKey,
    signingKey: caKey,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      // ECDSA: the key signs the handshake (digitalSignature); no key encipherment.
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension([
        ...SERVER_DNS_NAMES.map((value) => ({ type: /** @type {const} */ ("dns"), value })),
        ...SERVER_IPS.map((value) => ({ type: /** @type {const} */ ("ip"), value })),
      ]),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(await ca.publicKey.export()),
    ],
  });
  return { keys, pem: cert.toString("pem") };
}

/** A positive 128-bit serial number (hex, high bit clear: DER INTEGERs are signed). */
function serialNumber() {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0] ?? 0) & 0x7f || 0x01;
  return bytes.toString("hex");
}

/** @param {CryptoKey} key */
async function privateKeyPem(key) {
  return x509.PemConverter.encode(await webcrypto.subtle.exportKey("pkcs8", key), "PRIVATE KEY");
}

/** @param {string} pem */
async function importPrivateKey(pem) {
  const der = x509.PemConverter.decode(pem)[0];
  if (!der) throw new Error("no PEM block in the CA key file");
  return webcrypto.subtle.importKey("pkcs8", der, KEY_ALGORITHM, false, ["sign"]);
}

/**
 * Writes `text` to a temporary file with `mode` and renames it over `path`: a concurrent
 * reader sees the old file or the new one, never half of one.
 * @param {string} path
 * @param {string} text
 * @param {number} mode
 */
function writeAtomically(path, text, mode) {
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
  writeFileSync(tmp, text.endsWith("\n") ? text : `${text}\n`, { mode, flag: "wx" });
  chmodSync(tmp, mode); // the umask may have taken bits off; 0600 keys stay 0600 regardless
  renameSync(tmp, path);
}
