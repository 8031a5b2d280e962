/**
 * The broker's statistics under Mosquitto's `$SYS/broker/...` names (mosquitto(8), "Broker
 * status"), as topic -> payload strings, and the diff against what was published last.
 * Pure: the metrics object gathers the figures and publishes what changed.
 */
import { RATE_WINDOWS, type RateWindow } from "./rates";
import { BROKER_NAME, BROKER_VERSION } from "./version";

export interface SysStats {
  /** Seconds since this run of the broker started. */
  uptimeSeconds: number;
  /** Clients connected now; undefined when not known (the topic is left out). */
  connected?: number;
  /** Sessions: clients connected, or disconnected with a session that has not expired. */
  sessions?: number;
  /** PUBLISH messages received from clients since this run started. */
  received: number;
  /** PUBLISH messages sent to clients since this run started. */
  sent: number;
  /** Messages dropped by the per-client bounds since this run started. */
  dropped: number;
  retained?: number;
  subscriptions?: number;
  /** Messages per second averaged over each window. */
  rates: { received: Record<RateWindow, number>; sent: Record<RateWindow, number> };
}

export const SYS_PREFIX = "$SYS/broker/";

/** Topic -> payload, in Mosquitto's formats ("N seconds" for the uptime, 2 decimals for loads). */
export function sysValues(s: SysStats): Record<string, string> {
  const v: Record<string, string> = {
    [`${SYS_PREFIX}version`]: `${BROKER_NAME} version ${BROKER_VERSION}`,
    [`${SYS_PREFIX}uptime`]: `${Math.floor(s.uptimeSeconds)} seconds`,
  };
  if (s.connected !== undefined) v[`${SYS_PREFIX}clients/connected`] = String(s.connected);
  if (s.sessions !== undefined) v[`${SYS_PREFIX}clients/total`] = String(s.sessions);
  // Mosquitto counts packets of every type under messages/; this broker counts PUBLISH
  // messages only, so messages/ and publish/messages/ carry the same figures.
  v[`${SYS_PREFIX}messages/received`] = String(s.received);
  v[`${SYS_PREFIX}messages/sent`] = String(s.sent);
  v[`${SYS_PREFIX}publish/messages/received`] = String(s.received);
  v[`${SYS_PREFIX}publish/messages/sent`] = String(s.sent);
  v[`${SYS_PREFIX}publish/messages/dropped`] = String(s.dropped);
  if (s.retained !== undefined) v[`${SYS_PREFIX}retained messages/count`] = String(s.retained);
  if (s.subscriptions !== undefined) v[`${SYS_PREFIX}subscriptions/count`] = String(s.subscriptions);
  // Mosquitto's load figures are messages per minute, averaged over 1, 5 and 15 minutes.
  for (const w of Object.keys(RATE_WINDOWS) as RateWindow[]) {
    v[`${SYS_PREFIX}load/messages/received/${w}`] = (s.rates.received[w] * 60).toFixed(2);
    v[`${SYS_PREFIX}load/messages/sent/${w}`] = (s.rates.sent[w] * 60).toFixed(2);
    v[`${SYS_PREFIX}load/publish/received/${w}`] = (s.rates.received[w] * 60).toFixed(2);
    v[`${SYS_PREFIX}load/publish/sent/${w}`] = (s.rates.sent[w] * 60).toFixed(2);
  }
  return v;
}

/** The entries of `next` whose payload differs from what `last` holds (all of them after a restart). */
export function changedValues(last: ReadonlyMap<string, string>, next: Record<string, string>): [topic: string, payload: string][] {
  return Object.entries(next).filter(([topic, payload]) => last.get(topic) !== payload);
}
