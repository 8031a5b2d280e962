#!/usr/bin/env python3
"""A monitor: follows every device's readings and status, and misses nothing while it is away.

It keeps a persistent session (a fixed client id, MQTT 5 Clean Start 0 and a Session Expiry
Interval), so the broker queues the QoS 1 messages published while the monitor is stopped
and delivers them when it comes back. It prints one JSON line per message on stdout:

    {"topic": "devices/sensor-17/readings", "payload": "...", "qos": 1, "retain": false}

Usage: monitor.py [--client-id monitor-1] [--session-expiry 86400] [--exit-after N] [--timeout S]
plus the connection options of edge_mqtt.py.
"""
import argparse
import json
import signal
import threading
import time

from edge_mqtt import PacketTypes, add_connection_args, connect, log, make_client, properties, reason_value

TOPICS = [("devices/+/readings", 1), ("devices/+/status", 1)]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_connection_args(parser, default_client_id="monitor-1")
    parser.add_argument("--session-expiry", type=int, default=86400, help="seconds the broker keeps the session while away (default %(default)s)")
    parser.add_argument("--exit-after", type=int, default=0, help="exit after this many messages (default: run until stopped)")
    parser.add_argument("--timeout", type=float, default=0, help="exit after this many seconds (default: run until stopped)")
    return parser.parse_args()


def main() -> None:
    settings = parse_args()
    client = make_client(settings)
    done = threading.Event()
    received = 0

    def on_message(_client, _userdata, message):
        nonlocal received
        line = {"topic": message.topic, "payload": message.payload.decode("utf-8", "replace"), "qos": message.qos, "retain": bool(message.retain)}
        print(json.dumps(line), flush=True)
        received += 1
        if settings.exit_after and received >= settings.exit_after:
            done.set()

    def on_subscribe(_client, _userdata, _mid, reason_codes, *_rest):
        granted = [reason_value(rc) for rc in reason_codes]
        # 0x80 and above is a refusal, e.g. 0x87 when an ACL rule does not allow the filter.
        log(f"subscribed: {', '.join(f'{t} -> 0x{g:02x}' for (t, _), g in zip(TOPICS, granted))}")

    client.on_message = on_message
    client.on_subscribe = on_subscribe
    # Clean Start 0: resume the session this client id left [MQTT-3.1.2-5]; Session Expiry > 0:
    # the broker keeps it, subscriptions and queued QoS 1 messages, after we go [MQTT-3.1.2-23].
    connect_props = properties(PacketTypes.CONNECT, SessionExpiryInterval=settings.session_expiry)
    present = connect(client, settings, clean_start=False, properties=connect_props)
    if present:
        # The session already holds the subscriptions; subscribing again would only replay retained messages.
        log(f"resumed the session of {settings.client_id}: queued messages follow")
    else:
        client.subscribe(TOPICS)

    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    done.wait(settings.timeout or None)
    # paho acknowledges a QoS 1 message after on_message returns: give that PUBACK a moment to
    # go out before the DISCONNECT, or the broker would deliver the last message again next time.
    time.sleep(0.3)
    # A normal DISCONNECT: the session stays for --session-expiry seconds.
    client.disconnect()
    client.loop_stop()
    log(f"received {received} messages")


if __name__ == "__main__":
    main()
