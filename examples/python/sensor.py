#!/usr/bin/env python3
"""A sensor: announces itself with a retained status, publishes readings, leaves a Last Will.

    devices/<id>/status    "online" (retained, QoS 1) on connect, "offline" on a clean stop;
                           the broker publishes the Will "offline" (retained) if the device
                           vanishes. Both carry a Message Expiry Interval, so a status nobody
                           refreshes disappears instead of claiming "online" forever.
    devices/<id>/readings  {"seq": n, "temperature": t} at QoS 1 every --interval seconds.

Usage: sensor.py [--client-id sensor-17] [--interval 5] [--count N] [--status-expiry 3600]
plus the connection options of edge_mqtt.py. Ctrl-C (or SIGTERM) stops cleanly.
"""
import argparse
import json
import math
import signal
import threading
import time

from edge_mqtt import PacketTypes, add_connection_args, connect, log, make_client, properties


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_connection_args(parser, default_client_id="sensor-17")
    parser.add_argument("--interval", type=float, default=5, help="seconds between readings (default %(default)s)")
    parser.add_argument("--count", type=int, default=0, help="stop after this many readings (default: run until stopped)")
    parser.add_argument("--status-expiry", type=int, default=3600, help="Message Expiry Interval of the status, seconds (default %(default)s)")
    return parser.parse_args()


def publish_status(client, topic: str, status: str, expiry: int) -> None:
    """A retained status the broker keeps for `expiry` seconds; waits for its PUBACK."""
    props = properties(PacketTypes.PUBLISH, MessageExpiryInterval=expiry)
    # Retained: a monitor that subscribes later still learns the status [MQTT-3.3.1-5];
    # the broker drops it once the expiry has passed [MQTT-3.3.2-5].
    client.publish(topic, status, qos=1, retain=True, properties=props).wait_for_publish(10)


def reading(seq: int) -> str:
    """A made-up temperature that drifts slowly, so the output looks like a sensor's."""
    return json.dumps({"seq": seq, "temperature": round(21 + 2 * math.sin(seq / 10), 2), "ts": int(time.time())})


def main() -> None:
    settings = parse_args()
    device = settings.client_id
    status_topic = f"devices/{device}/status"
    client = make_client(settings)
    # The Will: sent by the broker if this connection ends without a DISCONNECT (power cut,
    # crash, network gone) [MQTT-3.1.2-8]; a clean DISCONNECT discards it [MQTT-3.1.2-10].
    will_props = properties(PacketTypes.WILLMESSAGE, MessageExpiryInterval=settings.status_expiry)
    client.will_set(status_topic, "offline", qos=1, retain=True, properties=will_props)
    connect(client, settings, clean_start=True)
    publish_status(client, status_topic, "online", settings.status_expiry)
    log(f"{device}: connected to {settings.url}, status online")

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    seq = 0
    last_status = time.monotonic()
    while not stop.is_set() and (settings.count == 0 or seq < settings.count):
        seq += 1
        client.publish(f"devices/{device}/readings", reading(seq), qos=1).wait_for_publish(10)
        log(f"{device}: reading {seq} acknowledged")
        # Heartbeat: refresh the retained status before its expiry runs out.
        if time.monotonic() - last_status > settings.status_expiry / 2:
            publish_status(client, status_topic, "online", settings.status_expiry)
            last_status = time.monotonic()
        if settings.count and seq >= settings.count:
            break
        stop.wait(settings.interval)

    # A clean stop: say "offline" ourselves, then DISCONNECT (which discards the Will).
    publish_status(client, status_topic, "offline", settings.status_expiry)
    client.disconnect()
    client.loop_stop()
    log(f"{device}: status offline, disconnected after {seq} readings")


if __name__ == "__main__":
    main()
