/*
 * Host test of ../common/device_logic.h: compiled as C99 and as C++ with the machine's gcc
 * and g++ (test/core/examples-esp32.test.ts does both, or run `make -C examples/esp32/host-test`).
 * Prints one line per failed check and "passed N checks" at the end; exit status 1 on any
 * failure.
 */
#include "../common/device_logic.h"

#include <stdio.h>
#include <string.h>

static int checks;
static int failures;

#define CHECK(cond)                                                                        \
    do {                                                                                   \
        checks++;                                                                          \
        if (!(cond)) {                                                                     \
            failures++;                                                                    \
            printf("FAIL %s (line %d): %s\n", __func__, __LINE__, #cond);                         \
        }                                                                                  \
    } while (0)

#define CHECK_EQ_U(a, b)                                                                   \
    do {                                                                                   \
        unsigned long va_ = (unsigned long)(a), vb_ = (unsigned long)(b);                  \
        checks++;                                                                          \
        if (va_ != vb_) {                                                                  \
            failures++;                                                                    \
            printf("FAIL %s (line %d): %s == %lu, expected %lu\n", __func__, __LINE__, #a, va_, vb_); \
        }                                                                                  \
    } while (0)

#define CHECK_STR(a, b)                                                                    \
    do {                                                                                   \
        checks++;                                                                          \
        if (strcmp((a), (b)) != 0) {                                                       \
            failures++;                                                                    \
            printf("FAIL %s (line %d): \"%s\", expected \"%s\"\n", __func__, __LINE__, (a), (b)); \
        }                                                                                  \
    } while (0)

static void test_device_ids(void)
{
    char long_id[DL_DEVICE_ID_MAX + 2];
    CHECK(dl_valid_device_id("sensor-01"));
    CHECK(dl_valid_device_id("esp32_A.b-9"));
    CHECK(!dl_valid_device_id(""));
    CHECK(!dl_valid_device_id(NULL));
    CHECK(!dl_valid_device_id("a+b"));   /* wildcard in a topic name [MQTT-4.7.1-1] */
    CHECK(!dl_valid_device_id("a#"));
    CHECK(!dl_valid_device_id("a/b"));   /* would land in another device's tree */
    CHECK(!dl_valid_device_id("$SYS"));
    CHECK(!dl_valid_device_id("caf\xc3\xa9"));
    CHECK(!dl_valid_device_id("has space"));
    memset(long_id, 'x', sizeof long_id);
    long_id[DL_DEVICE_ID_MAX] = '\0';
    CHECK(dl_valid_device_id(long_id)); /* exactly the maximum */
    long_id[DL_DEVICE_ID_MAX] = 'x';
    long_id[DL_DEVICE_ID_MAX + 1] = '\0';
    CHECK(!dl_valid_device_id(long_id));
}

static void test_topics(void)
{
    char t[DL_TOPIC_MAX];
    char small[12];
    char long_id[DL_DEVICE_ID_MAX + 1];
    CHECK(dl_status_topic(t, sizeof t, "sensor-01"));
    CHECK_STR(t, "devices/sensor-01/status");
    CHECK(dl_heartbeat_topic(t, sizeof t, "sensor-01"));
    CHECK_STR(t, "devices/sensor-01/heartbeat");
    /* The longest id still fits DL_TOPIC_MAX. */
    memset(long_id, 'x', DL_DEVICE_ID_MAX);
    long_id[DL_DEVICE_ID_MAX] = '\0';
    CHECK(dl_heartbeat_topic(t, sizeof t, long_id));
    CHECK_EQ_U(strlen(t), DL_TOPIC_MAX - 1);
    /* Refusals leave an empty string, never a truncated topic. */
    CHECK(!dl_status_topic(small, sizeof small, "sensor-01"));
    CHECK_STR(small, "");
    CHECK(!dl_status_topic(t, sizeof t, "a/b"));
    CHECK_STR(t, "");
}

static void test_payloads(void)
{
    char p[128];
    char tiny[16];
    int n = dl_heartbeat_payload(p, sizeof p, 12, 720, -61, 1767225600LL, 60);
    CHECK_STR(p, "{\"seq\":12,\"uptime_s\":720,\"rssi\":-61,\"ts\":1767225600,\"interval_s\":60}");
    CHECK_EQ_U(n, strlen(p));
    dl_heartbeat_payload(p, sizeof p, 1, 0, 0, 0, 60); /* clock not set yet */
    CHECK_STR(p, "{\"seq\":1,\"uptime_s\":0,\"rssi\":0,\"ts\":null,\"interval_s\":60}");
    CHECK(dl_heartbeat_payload(tiny, sizeof tiny, 1, 0, 0, 0, 60) == -1);
    CHECK_STR(tiny, "");
    CHECK_STR(DL_STATUS_ONLINE, "online");
    CHECK_STR(DL_STATUS_OFFLINE, "offline");
}

static void test_expiry(void)
{
    dl_config c = dl_default_config();
    CHECK_EQ_U(dl_online_expiry_s(&c), 180); /* three one-minute heartbeats */
    c.heartbeat_interval_ms = 333;
    CHECK_EQ_U(dl_online_expiry_s(&c), 1); /* 999 ms rounds up */
    c.heartbeat_interval_ms = 0;
    CHECK_EQ_U(dl_online_expiry_s(&c), 1); /* never 0, which would mean "no expiry" */
    c.heartbeat_interval_ms = UINT32_MAX;
    CHECK_EQ_U(dl_online_expiry_s(&c), 12884902u); /* 3 * (2^32 - 1) ms, no overflow */
}

static void test_backoff_schedule(void)
{
    dl_config c = dl_default_config(); /* base 1 s, cap 5 min */
    CHECK_EQ_U(dl_backoff_ceiling_ms(&c, 0), 0);
    CHECK_EQ_U(dl_backoff_ceiling_ms(&c, 1), 1000);
    CHECK_EQ_U(dl_backoff_ceiling_ms(&c, 2), 2000);
    CHECK_EQ_U(dl_backoff_ceiling_ms(&c, 3), 4000);
    CHECK_EQ_U(dl_backoff_ceiling_ms(&c, 9), 256000);
    CHECK_EQ_U(dl_backoff_ceiling_ms(&c, 10), 300000); /* 512 s capped at 300 s */
    CHECK_EQ_U(dl_backoff_ceiling_ms(&c, 1000000), 300000);
    CHECK_EQ_U(dl_backoff_ceiling_ms(&c, UINT32_MAX), 300000);
    c.backoff_cap_ms = UINT32_MAX; /* no overflow on the way to a huge cap */
    CHECK_EQ_U(dl_backoff_ceiling_ms(&c, 40), UINT32_MAX);
}

static void test_backoff_jitter(void)
{
    dl_config c = dl_default_config();
    uint32_t rng = 12345;
    uint32_t f, i, lo, hi, min_seen, max_seen, d;
    /* Extremes of the random input land on the bounds [ceiling/2, ceiling]. */
    CHECK_EQ_U(dl_backoff_delay_ms(&c, 3, 0), 2000);
    CHECK_EQ_U(dl_backoff_delay_ms(&c, 3, 2000), 4000);
    CHECK_EQ_U(dl_backoff_delay_ms(&c, 3, UINT32_MAX), 2000 + UINT32_MAX % 2001u);
    for (f = 1; f <= 12; f++) {
        hi = dl_backoff_ceiling_ms(&c, f);
        lo = hi / 2;
        min_seen = UINT32_MAX;
        max_seen = 0;
        for (i = 0; i < 20000; i++) {
            d = dl_backoff_delay_ms(&c, f, dl_rand(&rng));
            if (d < min_seen) min_seen = d;
            if (d > max_seen) max_seen = d;
        }
        CHECK(min_seen >= lo && max_seen <= hi);
        /* Jitter really spreads: the draws cover most of the window. */
        CHECK(min_seen - lo < (hi - lo) / 20 + 1 && hi - max_seen < (hi - lo) / 20 + 1);
    }
    /* A zero seed does not get stuck at zero. */
    rng = 0;
    CHECK(dl_rand(&rng) != 0 && rng != 0);
}

static void test_first_connect_and_heartbeats(void)
{
    dl_config c = dl_default_config();
    dl_machine m;
    uint32_t t = 5000;
    dl_init(&m, &c, 1);
    CHECK(dl_tick(&m, t) == DL_ACT_NONE); /* no network: nothing */
    CHECK_EQ_U(dl_wait_ms(&m, t), UINT32_MAX);
    dl_on_network_up(&m, t);
    CHECK(dl_tick(&m, t) == DL_ACT_CONNECT); /* first connect at once */
    CHECK(m.state == DL_CONNECTING);
    CHECK(dl_tick(&m, t + 100000) == DL_ACT_NONE); /* waits for the library's answer */
    dl_on_connected(&m, t + 300);
    CHECK_EQ_U(dl_wait_ms(&m, t + 300), 0);
    CHECK(dl_tick(&m, t + 300) == DL_ACT_PUBLISH_ONLINE);
    CHECK(dl_tick(&m, t + 300) == DL_ACT_NONE); /* "online" once per connection */
    CHECK_EQ_U(dl_wait_ms(&m, t + 300), 60000);
    CHECK(dl_tick(&m, t + 60299) == DL_ACT_NONE);
    CHECK(dl_tick(&m, t + 60300) == DL_ACT_HEARTBEAT);
    CHECK_EQ_U(m.heartbeat_seq, 1);
    /* Late by 10 s: the next one keeps the original cadence. */
    CHECK(dl_tick(&m, t + 130300) == DL_ACT_HEARTBEAT);
    CHECK_EQ_U(dl_wait_ms(&m, t + 130300), 50000);
    /* Blocked for ten intervals: one heartbeat, not ten. */
    CHECK(dl_tick(&m, t + 800000) == DL_ACT_HEARTBEAT);
    CHECK(dl_tick(&m, t + 800000) == DL_ACT_NONE);
    CHECK_EQ_U(dl_wait_ms(&m, t + 800000), 60000);
    CHECK_EQ_U(m.heartbeat_seq, 3);
}

/* Drives failures with a fixed clock step and checks every delay against its window. */
static void test_reconnect_backoff(void)
{
    dl_config c = dl_default_config();
    dl_machine m;
    uint32_t t = 0, f;
    dl_init(&m, &c, 99);
    dl_on_network_up(&m, t);
    CHECK(dl_tick(&m, t) == DL_ACT_CONNECT);
    for (f = 1; f <= 15; f++) {
        uint32_t hi = dl_backoff_ceiling_ms(&c, f);
        dl_on_disconnected(&m, t); /* refused or unreachable */
        CHECK(m.state == DL_BACKOFF);
        CHECK_EQ_U(m.failures, f);
        CHECK(m.last_delay_ms >= hi / 2 && m.last_delay_ms <= hi);
        CHECK_EQ_U(dl_wait_ms(&m, t), m.last_delay_ms);
        CHECK(m.last_delay_ms == 0 || dl_tick(&m, t + m.last_delay_ms - 1) == DL_ACT_NONE);
        t += m.last_delay_ms;
        CHECK(dl_tick(&m, t) == DL_ACT_CONNECT);
    }
    CHECK(m.last_delay_ms <= 300000 && m.last_delay_ms >= 150000); /* at the cap */
    /* Accepted, then dropped after 5 s: still counts as a failure (no tight loop). */
    dl_on_connected(&m, t);
    dl_on_disconnected(&m, t + 5000);
    CHECK_EQ_U(m.failures, 16);
    CHECK(m.last_delay_ms >= 150000);
    t += 5000 + m.last_delay_ms;
    CHECK(dl_tick(&m, t) == DL_ACT_CONNECT);
    /* A connection that lasted a minute resets the schedule: next retry within 1 s. */
    dl_on_connected(&m, t);
    dl_on_disconnected(&m, t + 60000);
    CHECK_EQ_U(m.failures, 1);
    CHECK(m.last_delay_ms >= 500 && m.last_delay_ms <= 1000);
}

static void test_network_loss(void)
{
    dl_config c = dl_default_config();
    dl_machine m;
    uint32_t t = 1000;
    dl_init(&m, &c, 7);
    dl_on_network_up(&m, t);
    CHECK(dl_tick(&m, t) == DL_ACT_CONNECT);
    dl_on_connected(&m, t);
    CHECK(dl_tick(&m, t) == DL_ACT_PUBLISH_ONLINE);
    dl_on_network_down(&m);
    CHECK(m.state == DL_WAIT_NETWORK);
    dl_on_disconnected(&m, t + 10); /* the library reports the loss after Wi-Fi did */
    CHECK(m.state == DL_WAIT_NETWORK);
    CHECK_EQ_U(m.failures, 0);
    CHECK(dl_tick(&m, t + 999999) == DL_ACT_NONE); /* no attempts without a network */
    dl_on_network_up(&m, t + 1000000);
    CHECK(dl_tick(&m, t + 1000000) == DL_ACT_CONNECT);
    /* After failures, a returning network keeps the backoff's pace. */
    dl_on_disconnected(&m, t + 1000000);
    dl_on_disconnected(&m, t + 1000000);
    dl_on_network_down(&m);
    dl_on_network_up(&m, t + 2000000);
    CHECK(m.state == DL_BACKOFF);
    CHECK(m.last_delay_ms >= 1000 && m.last_delay_ms <= 4000);
    CHECK(dl_tick(&m, t + 2000000) == DL_ACT_NONE);
}

static void test_clock_wrap(void)
{
    dl_config c = dl_default_config();
    dl_machine m;
    uint32_t t = UINT32_MAX - 20000; /* millis() wraps after 49.7 days */
    dl_init(&m, &c, 3);
    dl_on_network_up(&m, t);
    CHECK(dl_tick(&m, t) == DL_ACT_CONNECT);
    dl_on_disconnected(&m, t);
    dl_on_disconnected(&m, t);
    CHECK_EQ_U(m.failures, 2);
    dl_on_connected(&m, t);
    CHECK(dl_tick(&m, t) == DL_ACT_PUBLISH_ONLINE);
    CHECK_EQ_U(dl_wait_ms(&m, t), 60000);
    CHECK(dl_tick(&m, t + 1000) == DL_ACT_NONE); /* deadline past the wrap: not "long ago" */
    CHECK(dl_tick(&m, t + 30000) == DL_ACT_NONE); /* wrapped, not yet due */
    CHECK_EQ_U(dl_wait_ms(&m, t + 30000), 30000);
    CHECK(dl_tick(&m, t + 60000) == DL_ACT_HEARTBEAT);
    /* Stability across the wrap: 70 s of uptime resets the backoff. */
    dl_on_disconnected(&m, t + 70000);
    CHECK_EQ_U(m.failures, 1);
}

int main(void)
{
    test_device_ids();
    test_topics();
    test_payloads();
    test_expiry();
    test_backoff_schedule();
    test_backoff_jitter();
    test_first_connect_and_heartbeats();
    test_reconnect_backoff();
    test_network_loss();
    test_clock_wrap();
    if (failures) {
        printf("failed %d of %d checks\n", failures, checks);
        return 1;
    }
    printf("passed %d checks\n", checks);
    return 0;
}
