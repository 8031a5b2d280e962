// The example page's logic: one MQTT.js client over a WebSocket (wss:// when the page is
// served over https), a subscription, a live list of what arrives, a publish form.
// MQTT.js's ES module build, served next to this file by serve.mjs (in your own deployment:
// bundle it, or import it from a CDN you trust).
// @ts-expect-error: a served file without type declarations; typed as MQTT.js just below.
import mqttBundle from "./vendor/mqtt.esm.js";

/** @type {typeof import("mqtt").default} */
const mqtt = mqttBundle;

/** At most this many messages are kept on the page (newest first). */
const MAX_SHOWN = 200;

const $ = (/** @type {string} */ id) => /** @type {any} */ (document.getElementById(id));

/** @type {import("mqtt").MqttClient | undefined} */
let client;

/**
 * The broker URL to offer: `?broker=` when the page was opened with one; else the page's own
 * host: locally (npm start on port 8787) ws[s]://<host>:8787/mqtt, deployed wss://<host>/mqtt.
 * wss when the page came over https: an https page may not open a plain ws:// socket.
 */
function defaultBrokerUrl() {
  const asked = new URLSearchParams(location.search).get("broker");
  if (asked) return asked;
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const local = ["localhost", "127.0.0.1", "[::1]"].includes(location.hostname);
  return `${scheme}://${location.hostname}${local ? ":8787" : ""}/mqtt`;
}

/** @param {"idle" | "connecting" | "connected" | "offline" | "error"} state @param {string} text */
function setStatus(state, text) {
  $("status").dataset.state = state;
  $("status").textContent = text;
  const connected = state === "connected";
  for (const button of document.querySelectorAll("#subscribe-form button, #publish-form button")) {
    /** @type {HTMLButtonElement} */ (button).disabled = !connected;
  }
  $("disconnect").disabled = client === undefined;
}

/** Adds one line to the message list: time, topic, QoS/retain flags, payload as text. */
function show(/** @type {string} */ topic, /** @type {Uint8Array} */ payload, /** @type {{ qos: number, retain: boolean }} */ packet) {
  const item = document.createElement("li");
  const time = new Date().toLocaleTimeString();
  const meta = `${time} qos ${packet.qos}${packet.retain ? " retained" : ""}`;
  const topicEl = Object.assign(document.createElement("span"), { className: "topic", textContent: topic });
  const metaEl = Object.assign(document.createElement("span"), { className: "meta", textContent: ` [${meta}] ` });
  // textContent, never innerHTML: a payload is whatever any publisher sent.
  const payloadEl = Object.assign(document.createElement("span"), { className: "payload", textContent: new TextDecoder().decode(payload) });
  item.append(topicEl, metaEl, payloadEl);
  item.dataset.topic = topic;
  const list = $("messages");
  list.prepend(item);
  while (list.children.length > MAX_SHOWN) list.lastElementChild.remove();
}

function connect() {
  client?.end(true);
  const url = $("url").value.trim();
  /** @type {import("mqtt").IClientOptions} */
  const options = {
    protocolVersion: 5,
    clientId: $("client-id").value.trim() || `browser-${crypto.randomUUID().slice(0, 8)}`,
    clean: true,
    // MQTT.js reconnects by itself after a lost connection, but not after a CONNACK refusal
    // (wrong password, not authorized): its reconnectOnConnackError is false by default.
    reconnectPeriod: 2000,
    connectTimeout: 10_000,
  };
  if ($("username").value) options.username = $("username").value;
  if ($("password").value) options.password = $("password").value;
  const c = (client = mqtt.connect(url, options));
  c.on("connect", () => setStatus("connected", `connected to ${url} as ${options.clientId}`));
  c.on("reconnect", () => setStatus("connecting", "reconnecting ..."));
  c.on("offline", () => setStatus("offline", "offline (will retry)"));
  c.on("error", (err) => setStatus("error", `error: ${err.message}`));
  c.on("message", (topic, payload, packet) => show(topic, payload, packet));
  setStatus("connecting", `connecting to ${url} ...`);
}

function disconnect() {
  client?.end();
  client = undefined;
  setStatus("idle", "not connected");
}

function subscribe() {
  const filter = $("filter").value.trim();
  const qos = /** @type {0 | 1 | 2} */ (Number($("sub-qos").value));
  client?.subscribe(filter, { qos }, (err, granted) => {
    // A SUBACK reason code of 128 or more is a refusal (e.g. the ACL forbids the filter).
    const refused = err ?? granted?.find((g) => g.qos >= 128);
    const text = refused ? `subscribe ${filter} refused${err ? `: ${err.message}` : ""}` : `subscribed to ${filter}`;
    $("status").textContent = text;
    $("status").dataset.subscribed = refused ? "" : filter;
  });
}

function publish() {
  const topic = $("topic").value.trim();
  const qos = /** @type {0 | 1 | 2} */ (Number($("pub-qos").value));
  client?.publish(topic, $("payload").value, { qos, retain: $("retain").checked }, (err) => {
    $("status").textContent = err ? `publish refused: ${err.message}` : `published to ${topic}`;
    $("status").dataset.published = err ? "" : topic;
  });
}

/** Runs `action` instead of submitting the form (which would reload the page). */
const onSubmit = (/** @type {string} */ formId, /** @type {() => void} */ action) =>
  $(formId).addEventListener("submit", (/** @type {Event} */ event) => {
    event.preventDefault();
    action();
  });

$("url").value = defaultBrokerUrl();
onSubmit("connect-form", connect);
onSubmit("subscribe-form", subscribe);
onSubmit("publish-form", publish);
$("disconnect").addEventListener("click", disconnect);
$("clear").addEventListener("click", () => $("messages").replaceChildren());
setStatus("idle", "not connected");
