"""Python's paho-mqtt (Debian's python3-paho-mqtt 1.6) against the broker over wss:// with the
local CA of `npm start -- --tls` (scripts/tls.mjs).

Usage: paho_tls_check.py PORT VERSION CA_FILE USERNAME PASSWORD   (VERSION: 4 or 5)
Prints one JSON object with what each step observed; the calling test asserts on it:
- untrusted: what a client that trusts only the system's CAs got (it must fail verification);
- strict_https: GET /health through Python's default context with VERIFY_X509_STRICT on (the
  flag Python >= 3.13 sets by default) and the CA: the certificate passes strict checks;
- connack / received: a publish/subscribe round trip with a user name and password, the
  subscriber dialling "localhost" (the DNS name in the certificate), the publisher 127.0.0.1
  (its IP address entry), both verifying the server against CA_FILE with host name checks on.
"""
import http.client
import json
import ssl
import sys
import threading
import time

import paho.mqtt.client as mqtt

PORT, VERSION, CA_FILE, USERNAME, PASSWORD = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
PROTOCOL = mqtt.MQTTv5 if VERSION == 5 else mqtt.MQTTv311
SUFFIX = f"v{VERSION}-{int(time.time() * 1000)}"
report = {}


def make_client(client_id, ca_certs):
    c = mqtt.Client(client_id=client_id, protocol=PROTOCOL, transport="websockets")
    c.ws_set_options(path="/mqtt")
    # CERT_REQUIRED and host name checking (paho's defaults); ca_certs=None: the system's CAs.
    c.tls_set(ca_certs=ca_certs)
    c.username_pw_set(USERNAME, PASSWORD)
    return c


def connect(c, host):
    connected = threading.Event()
    result = {}

    def on_connect(_c, _u, _flags, rc, properties=None):
        result["rc"] = int(rc.value) if hasattr(rc, "value") else int(rc)
        connected.set()

    c.on_connect = on_connect
    c.connect(host, PORT, keepalive=30)
    c.loop_start()
    if not connected.wait(10):
        raise SystemExit(f"{host}: no CONNACK")
    return result["rc"]


def tls_version(c):
    sock = c.socket()
    inner = getattr(sock, "_socket", sock)  # paho's WebsocketWrapper holds the SSLSocket
    return inner.version() if hasattr(inner, "version") else None


# 1. Without the CA: the handshake must fail certificate verification.
try:
    untrusted = make_client(f"paho-untrusted-{SUFFIX}", None)
    untrusted.connect("127.0.0.1", PORT, keepalive=30)
    report["untrusted"] = {"error": None}
    untrusted.disconnect()
except ssl.SSLCertVerificationError as err:
    report["untrusted"] = {"error": "SSLCertVerificationError", "reason": err.verify_message}
except Exception as err:  # noqa: BLE001 - reported, the test asserts on it
    report["untrusted"] = {"error": type(err).__name__, "reason": str(err)}

# 2. Strict X.509 verification, as Python 3.13's default context does it.
context = ssl.create_default_context(cafile=CA_FILE)
context.verify_flags |= ssl.VERIFY_X509_STRICT
conn = http.client.HTTPSConnection("localhost", PORT, context=context, timeout=10)
try:
    conn.request("GET", "/health")
    response = conn.getresponse()
    report["strict_https"] = {"status": response.status, "body": response.read().decode()}
except Exception as err:  # noqa: BLE001
    report["strict_https"] = {"error": type(err).__name__, "reason": str(err)}
finally:
    conn.close()

# 3. Round trip with the CA, user name and password.
received = []
got = threading.Condition()


def on_message(_c, _u, msg):
    with got:
        received.append({"topic": msg.topic, "payload": msg.payload.decode(), "qos": msg.qos, "retain": bool(msg.retain)})
        got.notify_all()


pub = make_client(f"paho-tls-pub-{SUFFIX}", CA_FILE)
report["pub_connack"] = connect(pub, "127.0.0.1")
if report["pub_connack"] != 0:  # refused: nothing more to observe
    print(json.dumps(report))
    sys.exit(0)
pub.publish(f"tls/{SUFFIX}/retained", "kept", qos=1, retain=True).wait_for_publish(10)

sub = make_client(f"paho-tls-sub-{SUFFIX}", CA_FILE)
sub.on_message = on_message
report["connack"] = connect(sub, "localhost")
report["tls_version"] = tls_version(sub)
subscribed = threading.Event()
sub.on_subscribe = lambda *_args: subscribed.set()
sub.subscribe(f"tls/{SUFFIX}/#", qos=1)
if not subscribed.wait(10):
    raise SystemExit("no SUBACK")
for qos in (0, 1):
    pub.publish(f"tls/{SUFFIX}/q{qos}", f"hello {qos}", qos=qos).wait_for_publish(10)

deadline = time.time() + 15
with got:
    while len(received) < 3 and time.time() < deadline:
        got.wait(deadline - time.time())

report["received"] = sorted(received, key=lambda m: m["topic"])
pub.disconnect()
sub.disconnect()
pub.loop_stop()
sub.loop_stop()
print(json.dumps(report))
