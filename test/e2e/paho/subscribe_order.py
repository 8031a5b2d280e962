"""Subscribe, then publish at once: issue 15's reproduction with Python's paho-mqtt.

Usage: subscribe_order.py HOST PORT VERSION QOS ROUNDS ROUTE   (ROUTE: relay or fast)
Client B subscribes to a fresh topic and, without waiting for the SUBACK, client A publishes
one message to it; ROUNDS times. Both clients run without paho's background thread, driven
from this one thread: paho then writes a packet to the socket inside subscribe() and
publish(), so B's SUBSCRIBE is on the wire before A's PUBLISH is written. Prints one JSON
object: every message B received, in order; the calling test asserts on it.
"""
import json
import sys
import time

import paho.mqtt.client as mqtt

HOST, PORT, VERSION, QOS, ROUNDS, ROUTE = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
PROTOCOL = mqtt.MQTTv5 if VERSION == 5 else mqtt.MQTTv311
SUFFIX = f"v{VERSION}-q{QOS}-{ROUTE}-{int(time.time() * 1000)}"


def client(client_id):
    c = mqtt.Client(client_id=client_id, protocol=PROTOCOL, transport="websockets")
    c.ws_set_options(path="/mqtt" if ROUTE == "relay" else f"/mqtt/{client_id}")
    state = {}
    c.on_connect = lambda _c, _u, _f, rc, properties=None: state.setdefault("rc", int(getattr(rc, "value", rc)))
    c.connect(HOST, PORT, keepalive=30)
    deadline = time.time() + 10
    while "rc" not in state:
        if time.time() > deadline:
            raise SystemExit(f"{client_id}: no CONNACK")
        c.loop(0.01)
    if state["rc"] != 0:
        raise SystemExit(f"{client_id}: CONNACK {state['rc']}")
    return c


def pump(clients, seconds, done=lambda: False):
    deadline = time.time() + seconds
    while time.time() < deadline and not done():
        for c in clients:
            c.loop(0.005)


sub = client(f"paho-order-sub-{SUFFIX}")
pub = client(f"paho-order-pub-{SUFFIX}")
received = []
sub.on_message = lambda _c, _u, m: received.append({"topic": m.topic, "payload": m.payload.decode(), "qos": m.qos})

for i in range(ROUNDS):
    topic = f"order/{SUFFIX}/{i}"
    sub.subscribe(topic, qos=QOS)  # written to the socket before this returns
    pub.publish(topic, f"m{i}", qos=QOS)
    pump([sub, pub], 1, lambda: len(received) > i)

pump([sub, pub], 5, lambda: len(received) >= ROUNDS)
pump([sub, pub], 0.6)  # anything more (a duplicate) would arrive now
print(json.dumps({"received": received}))
sub.disconnect()
pub.disconnect()
pump([sub, pub], 0.2)
