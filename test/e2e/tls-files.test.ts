// scripts/tls.mjs (the certificate of `npm start -- --tls`) and the local defaults `npm start`
// writes into .dev.vars (scripts/dev-vars.mjs): files only, no broker. Node's own X.509 parser
// and a TLS handshake check what was made.
import { X509Certificate } from "node:crypto";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { createServer } from "node:https";
import type { AddressInfo } from "node:net";
import { connect as tlsConnect } from "node:tls";
import { tmpdir } from "node:os";
import { join } from "node:path";
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { afterAll, describe, expect, it } from "vitest";
import { tlsDir, tlsFromArgs } from "../../scripts/broker-process.mjs";
import { ALLOW_ANONYMOUS_APPENDIX, ensureDevVars, parseDevVars } from "../../scripts/dev-vars.mjs";
import { CA_VALIDITY_DAYS, ensureTlsFiles, RENEW_BEFORE_DAYS, SERVER_VALIDITY_DAYS } from "../../scripts/tls.mjs";

const DAY = 24 * 60 * 60 * 1000;
const dirs: string[] = [];
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "edge-mqtt-tls-files-"));
  dirs.push(dir);
  return dir;
}
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

/** The outcome of a TLS handshake to a server with these files, as a client trusting `ca`. */
async function handshake(files: { keyFile: string; certFile: string }, ca: string, servername?: string, host = "127.0.0.1") {
  const server = createServer({ key: await readFile(files.keyFile), cert: await readFile(files.certFile) }, (_req, res) => res.end("ok"));
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const { port } = server.address() as AddressInfo;
  try {
    return await new Promise<string>((resolve) => {
      // No servername: Node checks the certificate against the IP address dialled.
      const socket = tlsConnect({ host, port, ca, ...(servername !== undefined ? { servername } : {}) });
      socket.once("secureConnect", () => {
        resolve(socket.authorized ? "authorized" : `unauthorized: ${String(socket.authorizationError)}`);
        socket.end();
      });
      socket.once("error", (err) => resolve(`error: ${err.message}`));
    });
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
}

describe("scripts/tls.mjs", () => {
  it("makes a CA (CA:true, keyCertSign) and a server certificate it signs for localhost, 127.0.0.1 and ::1", async () => {
    const dir = join(await tempDir(), "tls");
    const files = await ensureTlsFiles(dir);
    expect(files.status).toBe("created");
    const caCert = new X509Certificate(await readFile(files.caFile));
    const server = new X509Certificate(await readFile(files.certFile));
    expect(caCert.ca).toBe(true);
    const caX509 = new x509.X509Certificate(await readFile(files.caFile, "utf8"));
    const constraints = caX509.getExtension(x509.BasicConstraintsExtension);
    expect(constraints).toMatchObject({ ca: true, critical: true });
    const usages = caX509.getExtension(x509.KeyUsagesExtension)?.usages ?? 0;
    expect(usages & x509.KeyUsageFlags.keyCertSign).toBeTruthy();
    expect(server.ca).toBe(false);
    expect(server.checkIssued(caCert)).toBe(true);
    expect(server.verify(caCert.publicKey)).toBe(true);
    expect(server.subjectAltName).toBe("DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1");
    expect(server.keyUsage).toEqual(["1.3.6.1.5.5.7.3.1"]); // Node lists the EKU here: serverAuth
    const life = (c: X509Certificate) => (Date.parse(c.validTo) - Date.parse(c.validFrom)) / DAY;
    expect(life(server)).toBeGreaterThan(SERVER_VALIDITY_DAYS);
    expect(life(server)).toBeLessThan(SERVER_VALIDITY_DAYS + 1);
    expect(life(caCert)).toBeGreaterThan(CA_VALIDITY_DAYS);
    for (const key of [files.keyFile, files.caKeyFile]) expect((await stat(key)).mode & 0o777).toBe(0o600);
    expect((await stat(dir)).mode & 0o777).toBe(0o700);

    // A client that trusts the CA verifies the server, by name and by address.
    const ca = await readFile(files.caFile, "utf8");
    expect(await handshake(files, ca, "localhost")).toBe("authorized");
    expect(await handshake(files, ca)).toBe("authorized");
    // ::1 through OpenSSL's X509_check_ip (Node 22's tls.checkServerIdentity misreads IPv6 literals).
    expect(server.checkIP("::1")).toBe("::1");
    expect(await handshake(files, ca, "example.com")).toMatch(/error: .*(altnames|Hostname)/i);
    // A client that trusts another CA does not.
    const other = await ensureTlsFiles(join(await tempDir(), "tls"));
    expect(await handshake(files, await readFile(other.caFile, "utf8"), "localhost")).toMatch(/unauthorized|error/);
  });

  it("reuses the files; renews the server certificate from the same CA when it nears expiry; makes all anew without a usable CA", async () => {
    const dir = join(await tempDir(), "tls");
    const first = await ensureTlsFiles(dir);
    const read = async () => ({ ca: await readFile(first.caFile, "utf8"), cert: await readFile(first.certFile, "utf8"), key: await readFile(first.keyFile, "utf8") });
    const made = await read();

    expect((await ensureTlsFiles(dir)).status).toBe("reused");
    expect(await read()).toEqual(made);

    // Within RENEW_BEFORE_DAYS of the server certificate's end: a new one, the same CA.
    const later = new Date(Date.now() + (SERVER_VALIDITY_DAYS - RENEW_BEFORE_DAYS + 1) * DAY);
    expect((await ensureTlsFiles(dir, { now: later })).status).toBe("renewed");
    const renewed = await read();
    expect(renewed.ca).toBe(made.ca);
    expect(renewed.cert).not.toBe(made.cert);
    expect(renewed.key).not.toBe(made.key);
    expect(new X509Certificate(renewed.cert).checkIssued(new X509Certificate(renewed.ca))).toBe(true);

    // A server certificate from elsewhere (not issued by this CA): replaced.
    const foreign = await ensureTlsFiles(join(await tempDir(), "tls"));
    await writeFile(first.certFile, await readFile(foreign.certFile));
    await writeFile(first.keyFile, await readFile(foreign.keyFile));
    expect((await ensureTlsFiles(dir)).status).toBe("renewed");
    expect(new X509Certificate(await readFile(first.certFile)).checkIssued(new X509Certificate(made.ca))).toBe(true);

    // A damaged CA file: everything made anew (clients must trust the new ca.pem).
    await writeFile(first.caFile, "not a certificate\n");
    expect((await ensureTlsFiles(dir)).status).toBe("created");
    expect(await readFile(first.caFile, "utf8")).not.toBe(made.ca);
    // The CA itself past its end: made anew too.
    expect((await ensureTlsFiles(dir, { now: new Date(Date.now() + (CA_VALIDITY_DAYS + 1) * DAY) })).status).toBe("created");
  });
});

describe("TLS on or off: `npm start -- --tls`, TLS=1 (scripts/broker-process.mjs)", () => {
  it("reads --tls, --no-tls and the TLS environment variable", () => {
    expect(tlsFromArgs([], {})).toBe(false);
    expect(tlsFromArgs(["--tls"], {})).toBe(true);
    expect(tlsFromArgs(["--port", "1", "--tls"], { TLS: "0" })).toBe(true);
    for (const on of ["1", "true", "YES", "on"]) expect(tlsFromArgs([], { TLS: on })).toBe(true);
    for (const off of ["", "0", "false", "no"]) expect(tlsFromArgs([], { TLS: off })).toBe(false);
    expect(tlsFromArgs(["--no-tls"], { TLS: "1" })).toBe(false);
  });

  it("keeps the files under the state directory unless told otherwise", () => {
    expect(tlsDir("/x/state", true)).toBe("/x/state/tls");
    expect(tlsDir("/x/state", { dir: "/y/certs" })).toBe("/y/certs");
  });
});

describe("npm start's .dev.vars and ALLOW_ANONYMOUS (scripts/dev-vars.mjs)", () => {
  it("a new .dev.vars has ALLOW_ANONYMOUS=true (from .dev.vars.example)", async () => {
    const path = join(await tempDir(), "dev.vars");
    const result = ensureDevVars({ path });
    expect(result).toMatchObject({ created: true, addedAllowAnonymous: false });
    expect(parseDevVars(await readFile(path, "utf8")).ALLOW_ANONYMOUS).toBe("true");
  });

  it("a new .dev.vars from an example without the setting gets it all the same", async () => {
    const dir = await tempDir();
    await writeFile(join(dir, "example"), "ADMIN_TOKEN=replace-me\n");
    ensureDevVars({ path: join(dir, "dev.vars"), example: join(dir, "example") });
    expect(parseDevVars(await readFile(join(dir, "dev.vars"), "utf8")).ALLOW_ANONYMOUS).toBe("true");
  });

  it("an existing .dev.vars without ALLOW_ANONYMOUS gets ALLOW_ANONYMOUS=true appended, once, with a comment; nothing else changes", async () => {
    const path = join(await tempDir(), "dev.vars");
    await writeFile(path, "ADMIN_TOKEN=mine-0123456789\nFOO=bar", { mode: 0o600 });
    expect(ensureDevVars({ path })).toMatchObject({ created: false, hasAdminToken: true, addedAllowAnonymous: true });
    const text = await readFile(path, "utf8");
    expect(text).toBe(`ADMIN_TOKEN=mine-0123456789\nFOO=bar\n${ALLOW_ANONYMOUS_APPENDIX}`);
    expect(parseDevVars(text)).toEqual({ ADMIN_TOKEN: "mine-0123456789", FOO: "bar", ALLOW_ANONYMOUS: "true" });
    expect(ensureDevVars({ path }).addedAllowAnonymous).toBe(false);
    expect(await readFile(path, "utf8")).toBe(text);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
  });

  it("an existing choice is kept, false included", async () => {
    const path = join(await tempDir(), "dev.vars");
    await writeFile(path, "ADMIN_TOKEN=x\nALLOW_ANONYMOUS=false\n");
    expect(ensureDevVars({ path }).addedAllowAnonymous).toBe(false);
    expect(await readFile(path, "utf8")).toBe("ADMIN_TOKEN=x\nALLOW_ANONYMOUS=false\n");
  });
});
