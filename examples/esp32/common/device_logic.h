/*
 * device_logic.h: the part of the ESP32 examples that needs no hardware.
 *
 * Topic names, status and heartbeat payloads, the reconnect backoff (exponential, capped,
 * with jitter) and the connection/heartbeat state machine. Both firmware variants
 * (arduino/edge_mqtt_device/ and idf/main/) include this file, and host-test/ compiles it
 * with the machine's gcc and g++ so CI checks it without an ESP32.
 *
 * Plain C99 that also compiles as C++ (the Arduino sketch is C++): no Arduino or ESP-IDF
 * headers, no allocation, no clock. The caller passes the time in milliseconds (millis(),
 * esp_timer_get_time() / 1000) and a random seed (esp_random()).
 *
 * The state machine never talks to the network. It answers "what should I do now?"
 * (dl_tick) and is told what happened (dl_on_*); the firmware does the MQTT calls.
 */
#ifndef EDGE_MQTT_DEVICE_LOGIC_H
#define EDGE_MQTT_DEVICE_LOGIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Topics ------------------------------------------------------------------------- */

/* Longest device identifier accepted. MQTT 3.1.1 servers must accept 1..23 characters
 * [MQTT-3.1.3-5] and may accept more; this broker accepts longer ones. 64 keeps topic
 * buffers small on the device. */
#define DL_DEVICE_ID_MAX 64
/* "devices/" + id + "/heartbeat" + NUL fits. */
#define DL_TOPIC_MAX (8 + DL_DEVICE_ID_MAX + 10 + 1)

/* Payloads of the retained status topic, as in the MQTT guide our users learned from. */
#define DL_STATUS_ONLINE "online"
#define DL_STATUS_OFFLINE "offline"

/*
 * A device identifier is used as the MQTT client identifier and inside topic names.
 * Refused: empty, too long, anything but [A-Za-z0-9._-]. That rules out '+' and '#', which
 * must not appear in a Topic Name [MQTT-4.7.1-1], '/' (it would move the device into another
 * device's topic tree; the broker's ACL %c patterns never match such an id either), and
 * '$' (topics starting with it are the server's: wildcards do not match them [MQTT-4.7.2-1]
 * and this broker refuses PUBLISH to them).
 */
static inline bool dl_valid_device_id(const char *id)
{
    size_t n = 0;
    if (id == NULL) return false;
    for (; id[n] != '\0'; n++) {
        char c = id[n];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '_' || c == '.';
        if (!ok || n >= DL_DEVICE_ID_MAX) return false;
    }
    return n > 0;
}

/* Writes "devices/<id>/<leaf>". Returns false (and an empty buffer) when the id is not
 * valid or the buffer is too small, so a bad configuration never publishes anywhere. */
static inline bool dl_device_topic(char *buf, size_t size, const char *id, const char *leaf)
{
    int n;
    if (buf == NULL || size == 0) return false;
    buf[0] = '\0';
    if (!dl_valid_device_id(id)) return false;
    n = snprintf(buf, size, "devices/%s/%s", id, leaf);
    if (n < 0 || (size_t)n >= size) {
        buf[0] = '\0';
        return false;
    }
    return true;
}

/* Retained "online"/"offline"; also the Will topic. The broker's decommission
 * (DELETE /api/v1/devices/<id>) clears devices/<id>/# by default. */
static inline bool dl_status_topic(char *buf, size_t size, const char *id)
{
    return dl_device_topic(buf, size, id, "status");
}

/* Not retained: a heartbeat is news about now, not state for late subscribers. */
static inline bool dl_heartbeat_topic(char *buf, size_t size, const char *id)
{
    return dl_device_topic(buf, size, id, "heartbeat");
}

/* ---- Configuration ------------------------------------------------------------------ */

typedef struct {
    uint32_t heartbeat_interval_ms; /* heartbeat and refresh of the retained "online" */
    uint32_t backoff_base_ms;       /* ceiling of the first retry's delay */
    uint32_t backoff_cap_ms;        /* no retry waits longer than this */
    uint32_t stable_after_ms;       /* a connection that lasted this long resets the backoff */
    uint32_t offline_expiry_s;      /* Message Expiry of the retained "offline" (the Will) */
} dl_config;

/* One minute heartbeats, retries from 1 s up to 5 min, "offline" kept for a week. */
static inline dl_config dl_default_config(void)
{
    dl_config c;
    c.heartbeat_interval_ms = 60u * 1000u;
    c.backoff_base_ms = 1000u;
    c.backoff_cap_ms = 5u * 60u * 1000u;
    c.stable_after_ms = 60u * 1000u;
    c.offline_expiry_s = 7u * 24u * 3600u;
    return c;
}

/*
 * Message Expiry Interval of the retained "online" (MQTT 5, property 0x02): three heartbeats.
 * Each heartbeat republishes it, so while the device lives it never expires; when the device
 * is gone and no Will was sent (the broker lost it, or the device was unplugged while the
 * broker was being redeployed) the status disappears on its own instead of saying "online"
 * forever. Rounded up to whole seconds, at least 1: an expiry of 0 is not "expire now" but
 * would be sent as no expiry at all by some clients.
 */
static inline uint32_t dl_online_expiry_s(const dl_config *c)
{
    uint64_t ms = (uint64_t)c->heartbeat_interval_ms * 3u;
    uint64_t s = (ms + 999u) / 1000u;
    if (s == 0) s = 1;
    if (s > UINT32_MAX) s = UINT32_MAX;
    return (uint32_t)s;
}

/* ---- Payloads ----------------------------------------------------------------------- */

/*
 * Heartbeat JSON: {"seq":12,"uptime_s":720,"rssi":-61,"ts":1767225600,"interval_s":60}.
 * "ts" is Unix time from NTP, null until the clock is set (unix_time <= 0): a subscriber
 * then knows not to trust it. "interval_s" lets a dashboard call a device stale after a few
 * missed heartbeats without knowing its configuration (what MQTT 3.1.1 clients, without
 * Message Expiry, rely on). Returns the length, or -1 when the buffer is too small.
 */
static inline int dl_heartbeat_payload(char *buf, size_t size, uint32_t seq, uint32_t uptime_s,
                                       int32_t rssi, int64_t unix_time, uint32_t interval_s)
{
    int n;
    if (buf == NULL || size == 0) return -1;
    if (unix_time > 0) {
        n = snprintf(buf, size, "{\"seq\":%lu,\"uptime_s\":%lu,\"rssi\":%ld,\"ts\":%lld,\"interval_s\":%lu}",
                     (unsigned long)seq, (unsigned long)uptime_s, (long)rssi, (long long)unix_time,
                     (unsigned long)interval_s);
    } else {
        n = snprintf(buf, size, "{\"seq\":%lu,\"uptime_s\":%lu,\"rssi\":%ld,\"ts\":null,\"interval_s\":%lu}",
                     (unsigned long)seq, (unsigned long)uptime_s, (long)rssi, (unsigned long)interval_s);
    }
    if (n < 0 || (size_t)n >= size) {
        buf[0] = '\0';
        return -1;
    }
    return n;
}

/* ---- Backoff ------------------------------------------------------------------------ */

/* xorshift32: enough to spread a fleet's retries, not for cryptography. Seed with
 * esp_random() on the device; a zero seed would stay zero, so it is replaced. */
static inline uint32_t dl_rand(uint32_t *state)
{
    uint32_t x = *state ? *state : 0x9E3779B9u;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *state = x;
    return x;
}

/* Ceiling of the delay before retry number `failures` (1 = after the first failure):
 * base * 2^(failures-1), capped. Computed without overflow for any count. */
static inline uint32_t dl_backoff_ceiling_ms(const dl_config *c, uint32_t failures)
{
    uint64_t ceiling = c->backoff_base_ms;
    uint32_t i;
    if (failures == 0) return 0;
    for (i = 1; i < failures && ceiling < c->backoff_cap_ms; i++) ceiling *= 2u;
    return ceiling > c->backoff_cap_ms ? c->backoff_cap_ms : (uint32_t)ceiling;
}

/*
 * The delay itself: uniformly in [ceiling/2, ceiling] ("equal jitter"). Half of it is
 * random so that a thousand devices cut off by the same outage do not all come back in the
 * same second; half is fixed so that no device retries in a tight loop.
 */
static inline uint32_t dl_backoff_delay_ms(const dl_config *c, uint32_t failures, uint32_t random)
{
    uint32_t ceiling = dl_backoff_ceiling_ms(c, failures);
    uint32_t half = ceiling / 2u;
    uint32_t span = ceiling - half; /* at most 2^31: span + 1 cannot overflow */
    return half + random % (span + 1u);
}

/* ---- State machine ------------------------------------------------------------------ */

typedef enum {
    DL_WAIT_NETWORK, /* no Wi-Fi/IP: nothing to try */
    DL_BACKOFF,      /* network up, waiting until next_ms to (re)connect */
    DL_CONNECTING,   /* connect requested, no answer yet */
    DL_ONLINE        /* CONNACK accepted: status published, heartbeats due */
} dl_state;

typedef enum {
    DL_ACT_NONE,
    DL_ACT_CONNECT,        /* open the MQTT connection (or ask the client library to) */
    DL_ACT_PUBLISH_ONLINE, /* retained "online" (with expiry), once per connection */
    DL_ACT_HEARTBEAT       /* heartbeat message, and refresh the retained "online" */
} dl_action;

typedef struct {
    dl_config cfg;
    dl_state state;
    uint32_t failures;       /* consecutive failed or short-lived connections */
    uint32_t next_ms;        /* when the next timed action is due (BACKOFF, ONLINE) */
    uint32_t connected_ms;   /* when the current connection was accepted */
    uint32_t last_delay_ms;  /* the last backoff delay chosen (for logs) */
    uint32_t heartbeat_seq;  /* counts heartbeats since boot */
    uint32_t rng;
    bool online_due;         /* "online" not yet published on this connection */
} dl_machine;

/* Millisecond clocks wrap (millis() after 49.7 days): compare by signed difference. */
static inline bool dl_reached(uint32_t now_ms, uint32_t deadline_ms)
{
    return (int32_t)(now_ms - deadline_ms) >= 0;
}

static inline void dl_init(dl_machine *m, const dl_config *cfg, uint32_t seed)
{
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    m->state = DL_WAIT_NETWORK;
    m->rng = seed;
}

/* The network came up: connect at once the first time, else keep the backoff's pace. */
static inline void dl_on_network_up(dl_machine *m, uint32_t now_ms)
{
    if (m->state != DL_WAIT_NETWORK) return;
    m->state = DL_BACKOFF;
    if (m->failures == 0) m->next_ms = now_ms;
    else {
        m->last_delay_ms = dl_backoff_delay_ms(&m->cfg, m->failures, dl_rand(&m->rng));
        m->next_ms = now_ms + m->last_delay_ms;
    }
}

/* Wi-Fi lost: stop trying until it is back (the MQTT connection is gone with it). */
static inline void dl_on_network_down(dl_machine *m)
{
    m->state = DL_WAIT_NETWORK;
    m->online_due = false;
}

/* CONNACK with return code 0 / reason code 0x00. */
static inline void dl_on_connected(dl_machine *m, uint32_t now_ms)
{
    m->state = DL_ONLINE;
    m->connected_ms = now_ms;
    m->online_due = true;
    m->next_ms = now_ms + m->cfg.heartbeat_interval_ms;
}

/*
 * The connection failed or ended (refused CONNACK, TLS error, socket closed, keep alive).
 * A connection that lasted stable_after_ms resets the count; a shorter one counts as a
 * failure, so a broker that accepts and then drops the device at once (a session takeover
 * loop between two devices sharing an id, an ACL that refuses its Will) is not hammered.
 */
static inline void dl_on_disconnected(dl_machine *m, uint32_t now_ms)
{
    if (m->state == DL_WAIT_NETWORK) return;
    if (m->state == DL_ONLINE && (uint32_t)(now_ms - m->connected_ms) >= m->cfg.stable_after_ms)
        m->failures = 0;
    m->failures++;
    m->last_delay_ms = dl_backoff_delay_ms(&m->cfg, m->failures, dl_rand(&m->rng));
    m->next_ms = now_ms + m->last_delay_ms;
    m->state = DL_BACKOFF;
    m->online_due = false;
}

/* What to do now. Call it after every event and whenever dl_wait_ms says; it returns one
 * action per call, so call it again until DL_ACT_NONE. */
static inline dl_action dl_tick(dl_machine *m, uint32_t now_ms)
{
    switch (m->state) {
    case DL_BACKOFF:
        if (!dl_reached(now_ms, m->next_ms)) return DL_ACT_NONE;
        m->state = DL_CONNECTING;
        return DL_ACT_CONNECT;
    case DL_ONLINE:
        if (m->online_due) {
            m->online_due = false;
            return DL_ACT_PUBLISH_ONLINE;
        }
        if (!dl_reached(now_ms, m->next_ms)) return DL_ACT_NONE;
        m->heartbeat_seq++;
        m->next_ms += m->cfg.heartbeat_interval_ms;
        /* Asleep or blocked for several intervals: one heartbeat now, not a burst. */
        if (dl_reached(now_ms, m->next_ms)) m->next_ms = now_ms + m->cfg.heartbeat_interval_ms;
        return DL_ACT_HEARTBEAT;
    case DL_WAIT_NETWORK:
    case DL_CONNECTING:
    default:
        return DL_ACT_NONE;
    }
}

/* How long the firmware may sleep before calling dl_tick again (UINT32_MAX: until an event). */
static inline uint32_t dl_wait_ms(const dl_machine *m, uint32_t now_ms)
{
    if (m->state == DL_ONLINE && m->online_due) return 0;
    if (m->state != DL_BACKOFF && m->state != DL_ONLINE) return UINT32_MAX;
    return dl_reached(now_ms, m->next_ms) ? 0 : m->next_ms - now_ms;
}

static inline const char *dl_state_name(dl_state s)
{
    switch (s) {
    case DL_WAIT_NETWORK: return "wait-network";
    case DL_BACKOFF: return "backoff";
    case DL_CONNECTING: return "connecting";
    case DL_ONLINE: return "online";
    default: return "?";
    }
}

#ifdef __cplusplus
}
#endif

#endif /* EDGE_MQTT_DEVICE_LOGIC_H */
