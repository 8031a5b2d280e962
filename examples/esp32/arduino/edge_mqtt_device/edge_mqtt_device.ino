/*
 * edge-mqtt device, Arduino variant.
 *
 * Targets the Arduino-ESP32 core 3.x (ESP-IDF 5.x inside). It uses no MQTT library from the
 * Library Manager: the core already contains ESP-IDF's esp-mqtt client (mqtt_client.h),
 * which speaks MQTT over wss:// with a pinned CA. The core's prebuilt libraries are built
 * with esp-mqtt's default settings, MQTT 3.1.1 only (CONFIG_MQTT_PROTOCOL_5 off), so here:
 *   - the Will (retained "offline") and the retained "online" carry no Message Expiry;
 *   - the closest thing: each heartbeat carries "interval_s" and an NTP timestamp, so a
 *     subscriber can call a device stale after three missed heartbeats, and the retained
 *     status is cleared for good by decommissioning the device
 *     (DELETE /api/v1/devices/<id> clears devices/<id>/#).
 * Built against a core whose sdkconfig enables CONFIG_MQTT_PROTOCOL_5 (Arduino as an
 * ESP-IDF component), the #if CONFIG_MQTT_PROTOCOL_5 parts below add the expiries, as the
 * ESP-IDF variant (../../idf) always does.
 *
 * Build (the shared logic lives in ../../common; see ../../README.md):
 *   arduino-cli compile --fqbn esp32:esp32:esp32 \
 *     --build-property "compiler.cpp.extra_flags=-I$PWD/examples/esp32/common" \
 *     examples/esp32/arduino/edge_mqtt_device
 * Arduino IDE: copy ../../common/device_logic.h next to this file instead.
 *
 * Not compiled in this project's CI (no ESP32 toolchain there); device_logic.h is, on the
 * host, by examples/esp32/host-test.
 */
#include <WiFi.h>
#include <time.h>

#include "sdkconfig.h"
#include "mqtt_client.h"

#include "device_logic.h"
#include "ca_pem.h"

// ---- Settings: edit these ---------------------------------------------------------------
#define WIFI_SSID "my-wifi"
#define WIFI_PASSWORD "my-wifi-password"
// A deployed broker: wss://<your-domain>/mqtt. On a LAN: see the README (npm start listens on
// 127.0.0.1 only); ws://<lan-ip>:<port>/mqtt needs no CA.
#define BROKER_URI "wss://mqtt.example.com/mqtt"
#define DEVICE_ID "" // empty: esp32-<MAC>
#define MQTT_USERNAME "" // a credential (POST /api/v1/credentials) or empty
#define MQTT_PASSWORD "" // its password, or a JWT when the broker has JWT_SECRET/JWT_JWKS
#define TLS_COMMON_NAME "" // "localhost" for `npm start -- --tls` reached through a LAN address
#define HEARTBEAT_SECONDS 60
#define NTP_SERVER "pool.ntp.org"
// ------------------------------------------------------------------------------------------

enum EventKind : uint8_t { EV_NET_UP, EV_NET_DOWN, EV_MQTT_CONNECTED, EV_MQTT_DISCONNECTED };

static QueueHandle_t events;
static dl_config cfg;
static dl_machine machine;
static esp_mqtt_client_handle_t client;
static bool clientStarted = false;
static char deviceId[DL_DEVICE_ID_MAX + 1];
static char statusTopic[DL_TOPIC_MAX];
static char heartbeatTopic[DL_TOPIC_MAX];

static void post(EventKind kind) { xQueueSend(events, &kind, 0); }

// Wi-Fi events arrive on the core's event task: only post them.
static void onWiFiEvent(arduino_event_id_t event) {
  if (event == ARDUINO_EVENT_WIFI_STA_GOT_IP) post(EV_NET_UP);
  else if (event == ARDUINO_EVENT_WIFI_STA_DISCONNECTED) post(EV_NET_DOWN);
}

// esp-mqtt events arrive on its own task: only post them (and log why a connection failed).
static void onMqttEvent(void *, esp_event_base_t, int32_t id, void *data) {
  esp_mqtt_event_handle_t event = static_cast<esp_mqtt_event_handle_t>(data);
  switch (static_cast<esp_mqtt_event_id_t>(id)) {
    case MQTT_EVENT_CONNECTED: post(EV_MQTT_CONNECTED); break;
    case MQTT_EVENT_DISCONNECTED: post(EV_MQTT_DISCONNECTED); break;
    case MQTT_EVENT_ERROR:
      if (event->error_handle->error_type == MQTT_ERROR_TYPE_CONNECTION_REFUSED)
        Serial.printf("CONNECT refused, return code %d\n", (int)event->error_handle->connect_return_code);
      else if (event->error_handle->error_type == MQTT_ERROR_TYPE_TCP_TRANSPORT)
        Serial.printf("transport error: esp-tls 0x%x, tls stack 0x%x, errno %d\n",
                      (unsigned)event->error_handle->esp_tls_last_esp_err,
                      (unsigned)event->error_handle->esp_tls_stack_err,
                      event->error_handle->esp_transport_sock_errno);
      break;
    default: break;
  }
}

// Unix time once NTP has set the clock, else 0 (the heartbeat then says "ts":null).
static int64_t unixTime() {
  time_t t = time(nullptr);
  return t > 1700000000 ? (int64_t)t : 0;
}

static bool isTls() { return strncmp(BROKER_URI, "wss://", 6) == 0; }

static void createClient() {
  esp_mqtt_client_config_t mqtt = {};
  mqtt.broker.address.uri = BROKER_URI;
  if (isTls()) mqtt.broker.verification.certificate = CA_PEM; // pinned; PEM, NUL-terminated
  if (TLS_COMMON_NAME[0] != '\0') mqtt.broker.verification.common_name = TLS_COMMON_NAME;
  mqtt.credentials.client_id = deviceId;
  if (MQTT_USERNAME[0] != '\0') mqtt.credentials.username = MQTT_USERNAME;
  if (MQTT_PASSWORD[0] != '\0') mqtt.credentials.authentication.password = MQTT_PASSWORD;
  mqtt.session.keepalive = 60; // the broker closes a silent connection after 1.5 x this
  // Will: published by the broker when the connection is lost without DISCONNECT
  // [MQTT-3.1.2-8], retained so a late subscriber sees "offline" [MQTT-3.1.2-17].
  mqtt.session.last_will.topic = statusTopic;
  mqtt.session.last_will.msg = DL_STATUS_OFFLINE;
  mqtt.session.last_will.msg_len = (int)strlen(DL_STATUS_OFFLINE);
  mqtt.session.last_will.qos = 1;
  mqtt.session.last_will.retain = 1;
  // The shared state machine paces reconnects (esp-mqtt's own retry is a fixed 10 s).
  mqtt.network.disable_auto_reconnect = true;
#if CONFIG_MQTT_PROTOCOL_5
  mqtt.session.protocol_ver = MQTT_PROTOCOL_V_5;
#endif
  client = esp_mqtt_client_init(&mqtt);
#if CONFIG_MQTT_PROTOCOL_5
  esp_mqtt5_connection_property_config_t connect = {};
  connect.message_expiry_interval = cfg.offline_expiry_s; // the Will's "offline" expires
  esp_mqtt5_client_set_connect_property(client, &connect);
#endif
  esp_mqtt_client_register_event(client, MQTT_EVENT_ANY, onMqttEvent, nullptr);
}

static void connectNow() {
  if (!clientStarted) {
    clientStarted = true;
    esp_mqtt_client_start(client);
  } else if (esp_mqtt_client_reconnect(client) != ESP_OK) {
    dl_on_disconnected(&machine, millis()); // not waiting to reconnect yet: try again later
  }
}

// Retained "online"; with MQTT 5 it expires after three heartbeats unless refreshed.
static void publishOnline() {
#if CONFIG_MQTT_PROTOCOL_5
  esp_mqtt5_publish_property_config_t props = {};
  props.message_expiry_interval = dl_online_expiry_s(&cfg);
  esp_mqtt5_client_set_publish_property(client, &props); // next publish only
#endif
  esp_mqtt_client_publish(client, statusTopic, DL_STATUS_ONLINE, 0, 1, 1);
}

static void publishHeartbeat() {
  char payload[128];
  int len = dl_heartbeat_payload(payload, sizeof payload, machine.heartbeat_seq, millis() / 1000,
                                 WiFi.RSSI(), unixTime(), cfg.heartbeat_interval_ms / 1000);
  if (len > 0) esp_mqtt_client_publish(client, heartbeatTopic, payload, len, 0, 0);
  publishOnline();
}

static void handle(EventKind kind) {
  static bool clockWaited = false;
  switch (kind) {
    case EV_NET_UP:
      // Once: wait (bounded) for NTP, so TLS builds that check certificate dates see a real
      // clock. If NTP does not answer, go on; a TLS failure is retried with backoff.
      if (!clockWaited) {
        struct tm tm;
        clockWaited = true;
        if (!getLocalTime(&tm, 15000)) Serial.println("no NTP time yet");
      }
      dl_on_network_up(&machine, millis());
      break;
    case EV_NET_DOWN: dl_on_network_down(&machine); break;
    case EV_MQTT_CONNECTED:
      dl_on_connected(&machine, millis());
      Serial.printf("connected as %s\n", deviceId);
      break;
    case EV_MQTT_DISCONNECTED:
      dl_on_disconnected(&machine, millis());
      if (machine.state == DL_BACKOFF)
        Serial.printf("disconnected; retry %u in %u ms\n", (unsigned)machine.failures, (unsigned)machine.last_delay_ms);
      break;
  }
}

static void runActions() {
  for (;;) {
    switch (dl_tick(&machine, millis())) {
      case DL_ACT_NONE: return;
      case DL_ACT_CONNECT: connectNow(); break;
      case DL_ACT_PUBLISH_ONLINE: publishOnline(); break;
      case DL_ACT_HEARTBEAT: publishHeartbeat(); break;
    }
  }
}

void setup() {
  Serial.begin(115200);
  if (DEVICE_ID[0] != '\0') strlcpy(deviceId, DEVICE_ID, sizeof deviceId);
  else snprintf(deviceId, sizeof deviceId, "esp32-%012llx", (unsigned long long)ESP.getEfuseMac());
  if (!dl_status_topic(statusTopic, sizeof statusTopic, deviceId) ||
      !dl_heartbeat_topic(heartbeatTopic, sizeof heartbeatTopic, deviceId)) {
    Serial.printf("device id \"%s\" is not usable in topics (letters, digits, - _ . only)\n", deviceId);
    for (;;) delay(1000);
  }
  if (isTls() && strstr(CA_PEM, "BEGIN CERTIFICATE") == nullptr) {
    Serial.println("ca_pem.h has no certificate: paste your broker's CA there (README: \"The CA to pin\")");
    for (;;) delay(1000);
  }

  events = xQueueCreate(16, sizeof(EventKind));
  cfg = dl_default_config();
  cfg.heartbeat_interval_ms = HEARTBEAT_SECONDS * 1000u;
  dl_init(&machine, &cfg, esp_random());
  createClient();

  configTime(0, 0, NTP_SERVER); // SNTP starts once Wi-Fi has an address
  WiFi.onEvent(onWiFiEvent);
  WiFi.mode(WIFI_STA);
  WiFi.setAutoReconnect(true);
  WiFi.begin(WIFI_SSID, WIFI_PASSWORD);
}

void loop() {
  EventKind kind;
  uint32_t wait = dl_wait_ms(&machine, millis());
  TickType_t ticks = wait == UINT32_MAX ? portMAX_DELAY : pdMS_TO_TICKS(wait) + 1;
  if (xQueueReceive(events, &kind, ticks) == pdTRUE) handle(kind);
  runActions();
}
