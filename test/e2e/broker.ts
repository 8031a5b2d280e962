// Starts a broker exactly as `npm start` does (scripts/broker-process.mjs),
// on a free port with a fresh persist dir, for one test file.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll } from "vitest";
import { getFreePort, startBroker, type Broker } from "../../scripts/broker-process.mjs";

export interface TestBroker {
  /** ws://127.0.0.1:<port>/mqtt (wss:// with `tls`) */
  url: string;
  httpUrl: string;
  port: number;
  persistTo: string;
  /** With `tls`: the local CA (PEM file) that verifies the broker's certificate, as `npm start -- --tls` prints it. */
  caFile?: string;
  /** With `tcp`: mqtt://127.0.0.1:<port>, MQTT over TCP bridged to `url`, as `npm start` listens on 1883. */
  tcpUrl?: string;
  /** Everything wrangler printed so far (for failure messages). */
  output(): string;
  stop(): Promise<void>;
}

/** The admin token every test broker is started with (ADMIN_TOKEN), for the admin API. */
export const TEST_ADMIN_TOKEN = "test-admin-token-0123456789";

/** `Authorization` header with the test admin token. */
export const ADMIN_AUTH = { Authorization: `Bearer ${TEST_ADMIN_TOKEN}` } as const;

/**
 * The settings every test broker starts with: the admin token, and anonymous clients allowed
 * as `npm start` allows them locally (.dev.vars), since a fresh checkout has no .dev.vars.
 */
export const TEST_VARS = { ADMIN_TOKEN: TEST_ADMIN_TOKEN, ALLOW_ANONYMOUS: "true" } as const;

/** `vars`: wrangler.toml [vars] to override for this broker, e.g. `{ CONNECT_TIMEOUT: "3" }`. */
export interface TestBrokerOptions {
  vars?: Record<string, string>;
  /** Serve wss:// and https:// with a local CA made under the persist dir, as `npm start -- --tls`. */
  tls?: boolean;
  /** Also listen for MQTT over TCP on a free loopback port (`tcpUrl`), as `npm start` does on 1883. */
  tcp?: boolean;
}

export async function startTestBroker(options: TestBrokerOptions = {}): Promise<TestBroker> {
  const persistTo = await mkdtemp(join(tmpdir(), "edge-mqtt-e2e-"));
  const port = await getFreePort();
  let log = "";
  const onOutput = (chunk: string) => {
    log += chunk;
    if (process.env.BROKER_LOG) process.stderr.write(chunk);
  };
  let broker: Broker;
  try {
    broker = await startBroker({ port, persistTo, onOutput, vars: { ...TEST_VARS, ...options.vars }, tls: options.tls ?? false, ...(options.tcp ? { tcpPort: await getFreePort() } : {}) });
  } catch (err) {
    await rm(persistTo, { recursive: true, force: true });
    throw new Error(`${err instanceof Error ? err.message : err}\n--- wrangler output ---\n${log}`);
  }
  return {
    url: broker.url,
    httpUrl: broker.httpUrl,
    port,
    persistTo,
    ...(broker.tls ? { caFile: broker.tls.caFile } : {}),
    ...(broker.tcpUrl !== undefined ? { tcpUrl: broker.tcpUrl } : {}),
    output: () => log,
    async stop() {
      await broker.stop();
      await rm(persistTo, { recursive: true, force: true });
    },
  };
}

/** One broker for the calling test file: started before its tests, stopped after. */
export function useBroker(options: TestBrokerOptions = {}): () => TestBroker {
  let broker: TestBroker | undefined;
  beforeAll(async () => {
    broker = await startTestBroker(options);
  });
  afterAll(async () => {
    await broker?.stop();
  });
  return () => {
    if (!broker) throw new Error("broker not started");
    return broker;
  };
}

/**
 * Creates (or replaces) an MQTT credential through the admin API; `admin: true` lets it read
 * `$SYS/...` (docs/security.md). Returns the options to connect as that user.
 */
export async function createCredential(
  broker: TestBroker,
  username: string,
  password = "correct-horse-battery",
  admin = false,
): Promise<{ username: string; password: string }> {
  const res = await fetch(`${broker.httpUrl}/api/v1/credentials`, {
    method: "POST",
    headers: { ...ADMIN_AUTH, "Content-Type": "application/json" },
    body: JSON.stringify({ username, password, admin }),
  });
  if (res.status !== 201 && res.status !== 200) throw new Error(`POST /api/v1/credentials: ${res.status} ${await res.text()}`);
  return { username, password };
}

/** An admin MQTT user of this broker (made once per broker), for subscribers to `$SYS/...`. */
export function sysAdmin(broker: TestBroker): Promise<{ username: string; password: string }> {
  let made = sysAdmins.get(broker.httpUrl);
  if (!made) sysAdmins.set(broker.httpUrl, (made = createCredential(broker, "sys-admin", "sys-admin-password", true)));
  return made;
}
const sysAdmins = new Map<string, Promise<{ username: string; password: string }>>();
