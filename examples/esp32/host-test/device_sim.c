/*
 * The firmware's main loop on a Linux host: the same device_logic.h state machine, with a
 * real monotonic clock, and its network replaced by lines on stdin/stdout. A driver (the
 * test in test/core/examples-esp32.test.ts, with MQTT.js against a real broker) performs
 * each action and reports back what happened, as esp-mqtt's events do on the ESP32.
 *
 *   device_sim <device-id> <heartbeat-ms> <backoff-base-ms> <backoff-cap-ms> <stable-ms> [clock-start-ms]
 *
 * clock-start-ms starts the 32-bit millisecond clock there (e.g. 4294962295, five seconds
 * before it wraps, as millis() does after 49.7 days).
 *
 * stdin, one event per line:  net-up | net-down | connected | disconnected | quit
 * stdout, one JSON action per line:
 *   {"do":"configure","client_id":"...","will":{"topic":"...","payload":"offline","qos":1,"retain":true,"expiry_s":N}}
 *   {"do":"connect","failures":N,"delay_ms":N}
 *   {"do":"publish","topic":"...","payload":"...","qos":Q,"retain":B,"expiry_s":N}   (expiry_s 0: none)
 */
#define _POSIX_C_SOURCE 200809L
#include "../common/device_logic.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static uint32_t clock_offset;

static uint32_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint32_t)((uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u) + clock_offset;
}

/* Payloads here are ours (no quotes or backslashes in them), except the heartbeat's JSON,
 * which is escaped as a JSON string. */
static void print_json_string(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') putchar('\\');
        putchar(*s);
    }
    putchar('"');
}

static void publish(const char *topic, const char *payload, int qos, int retain, uint32_t expiry_s)
{
    printf("{\"do\":\"publish\",\"topic\":");
    print_json_string(topic);
    printf(",\"payload\":");
    print_json_string(payload);
    printf(",\"qos\":%d,\"retain\":%s,\"expiry_s\":%lu}\n", qos, retain ? "true" : "false", (unsigned long)expiry_s);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    dl_config cfg = dl_default_config();
    dl_machine m;
    char status_topic[DL_TOPIC_MAX], heartbeat_topic[DL_TOPIC_MAX], line[64], payload[128];
    const char *id;
    uint32_t started;

    if (argc < 6) {
        fprintf(stderr, "usage: %s <device-id> <heartbeat-ms> <backoff-base-ms> <backoff-cap-ms> <stable-ms> [clock-start-ms]\n", argv[0]);
        return 2;
    }
    id = argv[1];
    cfg.heartbeat_interval_ms = (uint32_t)strtoul(argv[2], NULL, 10);
    cfg.backoff_base_ms = (uint32_t)strtoul(argv[3], NULL, 10);
    cfg.backoff_cap_ms = (uint32_t)strtoul(argv[4], NULL, 10);
    cfg.stable_after_ms = (uint32_t)strtoul(argv[5], NULL, 10);
    if (argc > 6) clock_offset = (uint32_t)strtoul(argv[6], NULL, 10) - now_ms();
    if (!dl_status_topic(status_topic, sizeof status_topic, id) ||
        !dl_heartbeat_topic(heartbeat_topic, sizeof heartbeat_topic, id)) {
        fprintf(stderr, "device id \"%s\" is not usable in topics\n", id);
        return 2;
    }
    started = now_ms();
    dl_init(&m, &cfg, (uint32_t)getpid() ^ started);

    printf("{\"do\":\"configure\",\"client_id\":\"%s\",\"will\":{\"topic\":\"%s\",\"payload\":\"%s\",\"qos\":1,"
           "\"retain\":true,\"expiry_s\":%lu}}\n",
           id, status_topic, DL_STATUS_OFFLINE, (unsigned long)cfg.offline_expiry_s);
    fflush(stdout);

    for (;;) {
        struct pollfd in = {0, POLLIN, 0};
        uint32_t wait = dl_wait_ms(&m, now_ms());
        int ready = poll(&in, 1, wait == UINT32_MAX ? -1 : (int)(wait > 60000 ? 60000 : wait));
        if (ready > 0) {
            if (fgets(line, sizeof line, stdin) == NULL) return 0; /* driver gone */
            line[strcspn(line, "\r\n")] = '\0';
            if (strcmp(line, "net-up") == 0) dl_on_network_up(&m, now_ms());
            else if (strcmp(line, "net-down") == 0) dl_on_network_down(&m);
            else if (strcmp(line, "connected") == 0) dl_on_connected(&m, now_ms());
            else if (strcmp(line, "disconnected") == 0) dl_on_disconnected(&m, now_ms());
            else if (strcmp(line, "quit") == 0) return 0;
            else fprintf(stderr, "unknown event \"%s\"\n", line);
        }
        for (;;) {
            dl_action a = dl_tick(&m, now_ms());
            if (a == DL_ACT_NONE) break;
            if (a == DL_ACT_CONNECT) {
                printf("{\"do\":\"connect\",\"failures\":%lu,\"delay_ms\":%lu}\n", (unsigned long)m.failures,
                       (unsigned long)(m.failures ? m.last_delay_ms : 0));
                fflush(stdout);
            } else {
                if (a == DL_ACT_HEARTBEAT) {
                    dl_heartbeat_payload(payload, sizeof payload, m.heartbeat_seq, (now_ms() - started) / 1000u, -50,
                                         (int64_t)time(NULL), cfg.heartbeat_interval_ms / 1000u);
                    publish(heartbeat_topic, payload, 0, 0, 0);
                }
                publish(status_topic, DL_STATUS_ONLINE, 1, 1, dl_online_expiry_s(&cfg));
            }
        }
    }
}
