"""Drives the broker with Python's paho-mqtt (Debian's python3-paho-mqtt) over WebSocket.

Usage: paho_check.py HOST PORT VERSION   (VERSION: 4 for MQTT 3.1.1, 5 for MQTT 5.0)
Prints one JSON object with what each step observed; the calling test asserts on it.
"""
import json
import sys
import threading
import time

import paho.mqtt.client as mqtt

HOST, PORT, VERSION = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
PROTOCOL = mqtt.MQTTv5 if VERSION == 5 else mqtt.MQTTv311
SUFFIX = f"v{VERSION}-{int(time.time() * 1000)}"


def client(client_id, will=None):
    c = mqtt.Client(client_id=client_id, protocol=PROTOCOL, transport="websockets")
    c.ws_set_options(path="/mqtt")
    if will:
        c.will_set(will[0], will[1], qos=1, retain=False)
    connected = threading.Event()
    result = {}

    def on_connect(_c, _u, flags, rc, properties=None):
        result["rc"] = int(rc.value) if hasattr(rc, "value") else int(rc)
        connected.set()

    c.on_connect = on_connect
    c.connect(HOST, PORT, keepalive=30)
    c.loop_start()
    if not connected.wait(10):
        raise SystemExit(f"{client_id}: no CONNACK")
    return c, result


report = {}
received = []
got = threading.Condition()

sub, sub_rc = client(f"paho-sub-{SUFFIX}")
report["connack"] = sub_rc["rc"]


def on_message(_c, _u, msg):
    with got:
        received.append({"topic": msg.topic, "payload": msg.payload.decode(), "qos": msg.qos, "retain": bool(msg.retain)})
        got.notify_all()


sub.on_message = on_message
pub, _ = client(f"paho-pub-{SUFFIX}")

# Retained first, so the subscription replays it.
pub.publish(f"paho/{SUFFIX}/retained", "kept", qos=1, retain=True).wait_for_publish(10)
subscribed = threading.Event()
sub.on_subscribe = lambda *_args: subscribed.set()
sub.subscribe(f"paho/{SUFFIX}/#", qos=2)
if not subscribed.wait(10):
    raise SystemExit("no SUBACK")

for qos in (0, 1, 2):
    info = pub.publish(f"paho/{SUFFIX}/q{qos}", f"hello {qos}", qos=qos)
    info.wait_for_publish(10)

# A client with a Will that vanishes without DISCONNECT.
doomed, _ = client(f"paho-doomed-{SUFFIX}", will=(f"paho/{SUFFIX}/will", "gone"))
doomed.loop_stop()
doomed.socket().close()

deadline = time.time() + 15
with got:
    while len(received) < 5 and time.time() < deadline:
        got.wait(deadline - time.time())

report["received"] = sorted(received, key=lambda m: m["topic"])
pub.disconnect()
sub.disconnect()
pub.loop_stop()
sub.loop_stop()
print(json.dumps(report))
