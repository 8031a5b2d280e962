/*
 * edge-mqtt device, ESP-IDF variant: esp-mqtt over wss:// with MQTT 5.
 *
 * Targets ESP-IDF v5.x (v5.1 or later: esp_netif_sntp.h) with its bundled esp-mqtt, built
 * with CONFIG_MQTT_PROTOCOL_5=y (sdkconfig.defaults). Not compiled in this project's CI (no
 * ESP32 toolchain there): the logic it shares with the Arduino sketch is, on the host
 * (../../common/device_logic.h, ../../host-test/).
 *
 * What it does:
 *  - joins Wi-Fi, sets the clock by NTP (mbedTLS checks certificate dates against it);
 *  - connects to wss://<host>/mqtt, verifying the broker's certificate against a pinned CA
 *    (main/ca.pem) or ESP-IDF's certificate bundle;
 *  - Will: retained "offline" on devices/<id>/status, with a Message Expiry so a retired
 *    device's "offline" does not stay forever;
 *  - on every connection: retained "online" on the same topic, expiring after three
 *    heartbeats; each heartbeat (devices/<id>/heartbeat) refreshes it;
 *  - reconnects with capped exponential backoff and jitter (esp-mqtt's own fixed-interval
 *    reconnect is turned off; the shared state machine decides when).
 *
 * Threads: esp-mqtt and the Wi-Fi/IP handlers run in their own tasks and only post events to
 * a queue; the app_main task owns the state machine and makes every MQTT call.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sdkconfig.h" /* before mqtt_client.h, which tests CONFIG_MQTT_PROTOCOL_5 */
#include "esp_event.h"
#include "esp_log.h"
#include "esp_mac.h"
#include "esp_netif.h"
#include "esp_netif_sntp.h"
#include "esp_random.h"
#include "esp_timer.h"
#include "esp_wifi.h"
#include "freertos/FreeRTOS.h"
#include "freertos/queue.h"
#include "mqtt_client.h"
#include "nvs_flash.h"
#if CONFIG_EDGE_TLS_CERT_BUNDLE
#include "esp_crt_bundle.h"
#endif

#include "device_logic.h"

#if !CONFIG_MQTT_PROTOCOL_5
#error "Set CONFIG_MQTT_PROTOCOL_5=y (sdkconfig.defaults does; delete sdkconfig and build again)"
#endif

static const char *TAG = "edge-mqtt";

#if CONFIG_EDGE_TLS_PINNED_CA
/* main/ca.pem, embedded by main/CMakeLists.txt (EMBED_TXTFILES adds the terminating NUL). */
extern const char ca_pem_start[] asm("_binary_ca_pem_start");
#endif

typedef enum { EV_NET_UP, EV_NET_DOWN, EV_MQTT_CONNECTED, EV_MQTT_DISCONNECTED } event_kind;

static QueueHandle_t s_events;
static dl_config s_cfg;
static dl_machine s_machine;
static esp_mqtt_client_handle_t s_client;
static bool s_client_started;
static char s_device_id[DL_DEVICE_ID_MAX + 1];
static char s_status_topic[DL_TOPIC_MAX];
static char s_heartbeat_topic[DL_TOPIC_MAX];

static uint32_t now_ms(void)
{
    return (uint32_t)(esp_timer_get_time() / 1000);
}

static void post(event_kind kind)
{
    xQueueSend(s_events, &kind, 0);
}

/* ---- Wi-Fi and clock ----------------------------------------------------------------- */

static void on_wifi_event(void *arg, esp_event_base_t base, int32_t id, void *data)
{
    if (base == WIFI_EVENT && id == WIFI_EVENT_STA_START) {
        esp_wifi_connect();
    } else if (base == WIFI_EVENT && id == WIFI_EVENT_STA_DISCONNECTED) {
        post(EV_NET_DOWN);
        esp_wifi_connect(); /* the Wi-Fi driver paces its own retries */
    } else if (base == IP_EVENT && id == IP_EVENT_STA_GOT_IP) {
        post(EV_NET_UP);
    }
}

static void start_wifi(void)
{
    wifi_init_config_t init = WIFI_INIT_CONFIG_DEFAULT();
    wifi_config_t wifi = {0};
    esp_netif_create_default_wifi_sta();
    ESP_ERROR_CHECK(esp_wifi_init(&init));
    ESP_ERROR_CHECK(esp_event_handler_register(WIFI_EVENT, ESP_EVENT_ANY_ID, on_wifi_event, NULL));
    ESP_ERROR_CHECK(esp_event_handler_register(IP_EVENT, IP_EVENT_STA_GOT_IP, on_wifi_event, NULL));
    strlcpy((char *)wifi.sta.ssid, CONFIG_EDGE_WIFI_SSID, sizeof wifi.sta.ssid);
    strlcpy((char *)wifi.sta.password, CONFIG_EDGE_WIFI_PASSWORD, sizeof wifi.sta.password);
    ESP_ERROR_CHECK(esp_wifi_set_mode(WIFI_MODE_STA));
    ESP_ERROR_CHECK(esp_wifi_set_config(WIFI_IF_STA, &wifi));
    ESP_ERROR_CHECK(esp_wifi_start());
}

/* Unix time once NTP has set the clock, else 0 (the heartbeat then says "ts":null). */
static int64_t unix_time(void)
{
    time_t t = time(NULL);
    return t > 1700000000 ? (int64_t)t : 0; /* before Nov 2023: the clock was never set */
}

/* The first time the network is up, wait (bounded) for NTP: with CONFIG_MBEDTLS_HAVE_TIME_DATE
 * a clock at 1970 makes every certificate "not yet valid". If NTP is not answering, go on:
 * the TLS failure is retried with backoff while SNTP keeps trying in the background. */
static void wait_for_clock_once(void)
{
    static bool waited;
    if (waited) return;
    waited = true;
    if (esp_netif_sntp_sync_wait(pdMS_TO_TICKS(15000)) != ESP_OK)
        ESP_LOGW(TAG, "no NTP answer yet from %s: TLS may fail until the clock is set", CONFIG_EDGE_NTP_SERVER);
}

/* ---- MQTT ---------------------------------------------------------------------------- */

static void on_mqtt_event(void *arg, esp_event_base_t base, int32_t id, void *data)
{
    esp_mqtt_event_handle_t event = data;
    switch ((esp_mqtt_event_id_t)id) {
    case MQTT_EVENT_CONNECTED:
        post(EV_MQTT_CONNECTED);
        break;
    case MQTT_EVENT_DISCONNECTED:
        post(EV_MQTT_DISCONNECTED);
        break;
    case MQTT_EVENT_ERROR:
        /* A refused CONNECT (MQTT 5 reason code: 0x86 bad user name or password, 0x87 not
         * authorized, ...) or a transport error; a DISCONNECTED event follows. */
        if (event->error_handle->error_type == MQTT_ERROR_TYPE_CONNECTION_REFUSED)
            ESP_LOGE(TAG, "CONNECT refused, reason 0x%02x", (unsigned)event->error_handle->connect_return_code);
        else if (event->error_handle->error_type == MQTT_ERROR_TYPE_TCP_TRANSPORT)
            ESP_LOGE(TAG, "transport error: esp-tls 0x%x, tls stack 0x%x, errno %d",
                     (unsigned)event->error_handle->esp_tls_last_esp_err,
                     (unsigned)event->error_handle->esp_tls_stack_err,
                     event->error_handle->esp_transport_sock_errno);
        break;
    default:
        break;
    }
}

static void create_client(void)
{
    esp_mqtt_client_config_t mqtt = {0};
    mqtt.broker.address.uri = CONFIG_EDGE_BROKER_URI;
#if CONFIG_EDGE_TLS_PINNED_CA
    mqtt.broker.verification.certificate = ca_pem_start; /* PEM, NUL-terminated: length 0 */
#else
    mqtt.broker.verification.crt_bundle_attach = esp_crt_bundle_attach;
#endif
    if (CONFIG_EDGE_TLS_COMMON_NAME[0] != '\0') mqtt.broker.verification.common_name = CONFIG_EDGE_TLS_COMMON_NAME;
    mqtt.credentials.client_id = s_device_id;
    if (CONFIG_EDGE_MQTT_USERNAME[0] != '\0') mqtt.credentials.username = CONFIG_EDGE_MQTT_USERNAME;
    if (CONFIG_EDGE_MQTT_PASSWORD[0] != '\0') mqtt.credentials.authentication.password = CONFIG_EDGE_MQTT_PASSWORD;
    mqtt.session.protocol_ver = MQTT_PROTOCOL_V_5;
    mqtt.session.keepalive = 60; /* the broker closes a silent connection after 1.5 x this */
    /* Will: published by the broker when the connection is lost without DISCONNECT
     * [MQTT-3.1.2-8], retained so a late subscriber sees "offline" [MQTT-3.1.2-17]. */
    mqtt.session.last_will.topic = s_status_topic;
    mqtt.session.last_will.msg = DL_STATUS_OFFLINE;
    mqtt.session.last_will.msg_len = (int)strlen(DL_STATUS_OFFLINE);
    mqtt.session.last_will.qos = 1;
    mqtt.session.last_will.retain = 1;
    /* The state machine paces reconnects; esp-mqtt's fixed 10 s retry would not back off. */
    mqtt.network.disable_auto_reconnect = true;

    s_client = esp_mqtt_client_init(&mqtt);
    ESP_ERROR_CHECK(s_client ? ESP_OK : ESP_FAIL);

    /* MQTT 5 Will properties: the retained "offline" expires (property 0x02) after
     * offline_expiry_s, so a device that never comes back leaves no status behind. */
    esp_mqtt5_connection_property_config_t connect = {0};
    connect.message_expiry_interval = s_cfg.offline_expiry_s;
    connect.payload_format_indicator = true; /* UTF-8 text */
    ESP_ERROR_CHECK(esp_mqtt5_client_set_connect_property(s_client, &connect));
    ESP_ERROR_CHECK(esp_mqtt_client_register_event(s_client, MQTT_EVENT_ANY, on_mqtt_event, NULL));
}

/* First attempt starts the client's task; later ones wake it from its wait. */
static void connect_now(void)
{
    if (!s_client_started) {
        s_client_started = true;
        ESP_ERROR_CHECK(esp_mqtt_client_start(s_client));
    } else if (esp_mqtt_client_reconnect(s_client) != ESP_OK) {
        /* Not in its reconnect wait yet (the disconnect is still being processed): count it
         * as one more failed attempt, which schedules the next try. */
        dl_on_disconnected(&s_machine, now_ms());
    }
}

/* Retained "online" with a Message Expiry of three heartbeats [MQTT-3.3.2-5]: refreshed by
 * every heartbeat, so it disappears by itself only when the device is gone. */
static void publish_online(void)
{
    esp_mqtt5_publish_property_config_t props = {0};
    props.message_expiry_interval = dl_online_expiry_s(&s_cfg);
    props.payload_format_indicator = true;
    esp_mqtt5_client_set_publish_property(s_client, &props); /* applies to the next publish only */
    if (esp_mqtt_client_publish(s_client, s_status_topic, DL_STATUS_ONLINE, 0, 1, 1) < 0)
        ESP_LOGW(TAG, "could not queue the online status");
}

static void publish_heartbeat(void)
{
    char payload[128];
    wifi_ap_record_t ap = {0};
    int32_t rssi = esp_wifi_sta_get_ap_info(&ap) == ESP_OK ? ap.rssi : 0;
    int len = dl_heartbeat_payload(payload, sizeof payload, s_machine.heartbeat_seq,
                                   (uint32_t)(esp_timer_get_time() / 1000000), rssi, unix_time(),
                                   s_cfg.heartbeat_interval_ms / 1000u);
    if (len > 0) esp_mqtt_client_publish(s_client, s_heartbeat_topic, payload, len, 0, 0);
    publish_online();
}

/* ---- Main loop ----------------------------------------------------------------------- */

static void handle(event_kind kind)
{
    uint32_t now = now_ms();
    switch (kind) {
    case EV_NET_UP:
        wait_for_clock_once();
        dl_on_network_up(&s_machine, now_ms());
        break;
    case EV_NET_DOWN:
        dl_on_network_down(&s_machine);
        break;
    case EV_MQTT_CONNECTED:
        dl_on_connected(&s_machine, now);
        ESP_LOGI(TAG, "connected to %s as %s", CONFIG_EDGE_BROKER_URI, s_device_id);
        break;
    case EV_MQTT_DISCONNECTED:
        dl_on_disconnected(&s_machine, now);
        if (s_machine.state == DL_BACKOFF)
            ESP_LOGW(TAG, "disconnected; retry %u in %u ms", (unsigned)s_machine.failures,
                     (unsigned)s_machine.last_delay_ms);
        break;
    }
}

static void run_actions(void)
{
    for (;;) {
        switch (dl_tick(&s_machine, now_ms())) {
        case DL_ACT_NONE: return;
        case DL_ACT_CONNECT: connect_now(); break;
        case DL_ACT_PUBLISH_ONLINE: publish_online(); break;
        case DL_ACT_HEARTBEAT: publish_heartbeat(); break;
        }
    }
}

static void choose_device_id(void)
{
    uint8_t mac[6];
    if (CONFIG_EDGE_DEVICE_ID[0] != '\0') {
        strlcpy(s_device_id, CONFIG_EDGE_DEVICE_ID, sizeof s_device_id);
    } else {
        ESP_ERROR_CHECK(esp_efuse_mac_get_default(mac));
        snprintf(s_device_id, sizeof s_device_id, "esp32-%02x%02x%02x%02x%02x%02x", mac[0], mac[1], mac[2],
                 mac[3], mac[4], mac[5]);
    }
    if (!dl_status_topic(s_status_topic, sizeof s_status_topic, s_device_id) ||
        !dl_heartbeat_topic(s_heartbeat_topic, sizeof s_heartbeat_topic, s_device_id)) {
        ESP_LOGE(TAG, "device id \"%s\" is not usable in topics (letters, digits, - _ . only)", s_device_id);
        abort();
    }
}

void app_main(void)
{
    esp_err_t err = nvs_flash_init(); /* the Wi-Fi driver keeps calibration data there */
    if (err == ESP_ERR_NVS_NO_FREE_PAGES || err == ESP_ERR_NVS_NEW_VERSION_FOUND) {
        ESP_ERROR_CHECK(nvs_flash_erase());
        err = nvs_flash_init();
    }
    ESP_ERROR_CHECK(err);
    ESP_ERROR_CHECK(esp_netif_init());
    ESP_ERROR_CHECK(esp_event_loop_create_default());

    s_events = xQueueCreate(16, sizeof(event_kind));
    s_cfg = dl_default_config();
    s_cfg.heartbeat_interval_ms = (uint32_t)CONFIG_EDGE_HEARTBEAT_S * 1000u;
    dl_init(&s_machine, &s_cfg, esp_random());
    choose_device_id();

    esp_sntp_config_t sntp = ESP_NETIF_SNTP_DEFAULT_CONFIG(CONFIG_EDGE_NTP_SERVER);
    ESP_ERROR_CHECK(esp_netif_sntp_init(&sntp)); /* starts polling once there is an IP */
    create_client();
    start_wifi();

    for (;;) {
        event_kind kind;
        uint32_t wait = dl_wait_ms(&s_machine, now_ms());
        /* +1: never a 0-tick wait for a deadline that is less than a tick away */
        TickType_t ticks = wait == UINT32_MAX ? portMAX_DELAY : pdMS_TO_TICKS(wait) + 1;
        if (xQueueReceive(s_events, &kind, ticks) == pdTRUE) handle(kind);
        run_actions();
    }
}
