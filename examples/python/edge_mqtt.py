"""Shared settings and client set-up for the edge-mqtt Python examples.

Every example reads the same settings, from the command line or else from the environment:

    --url        MQTT_URL        wss://127.0.0.1:8787/mqtt   (ws:// for a broker without TLS)
    --ca-file    MQTT_CA_FILE    the CA that signed the broker's certificate; omitted: the
                                 system's CAs (right for a deployed broker behind Cloudflare)
    --client-id  MQTT_CLIENT_ID  the MQTT client identifier (also the device id in topics)
    --username   MQTT_USERNAME   user name, with MQTT_PASSWORD as its password
                 MQTT_PASSWORD   (environment only: a command line is visible in `ps`)
                 MQTT_JWT        a JSON Web Token sent as the password instead (environment only)

Works with paho-mqtt 1.6 (Debian's python3-paho-mqtt) and 2.x (pip install paho-mqtt).
"""
import argparse
import os
import sys
import threading
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

DEFAULT_URL = "wss://127.0.0.1:8787/mqtt"


def add_connection_args(parser: argparse.ArgumentParser, default_client_id: str) -> None:
    """The connection options every example takes."""
    env = os.environ.get
    parser.add_argument("--url", default=env("MQTT_URL", DEFAULT_URL), help="broker URL (default %(default)s)")
    parser.add_argument("--ca-file", default=env("MQTT_CA_FILE"), help="CA file for wss:// (default: the system's CAs)")
    parser.add_argument("--client-id", default=env("MQTT_CLIENT_ID", default_client_id), help="client identifier (default %(default)s)")
    parser.add_argument("--username", default=env("MQTT_USERNAME"), help="user name (password from MQTT_PASSWORD)")


def properties(packet_type: int, **values) -> Properties:
    """MQTT 5 properties, e.g. properties(PacketTypes.PUBLISH, MessageExpiryInterval=3600)."""
    props = Properties(packet_type)
    for name, value in values.items():
        setattr(props, name, value)
    return props


def make_client(settings: argparse.Namespace) -> mqtt.Client:
    """An MQTT 5 client over WebSocket for settings.url, with TLS for wss:// and credentials."""
    url = urlsplit(settings.url)
    if url.scheme not in ("ws", "wss"):
        sys.exit(f"--url must be ws:// or wss://, not {settings.url!r}")
    kwargs = dict(client_id=settings.client_id, protocol=mqtt.MQTTv5, transport="websockets")
    if hasattr(mqtt, "CallbackAPIVersion"):
        # paho-mqtt 2.x asks which callback signatures we use; VERSION2 matches 1.6's MQTT 5 ones.
        kwargs["callback_api_version"] = mqtt.CallbackAPIVersion.VERSION2
    client = mqtt.Client(**kwargs)
    client.ws_set_options(path=url.path or "/mqtt")
    if url.scheme == "wss":
        # Certificate and host name verified (paho's defaults); ca_certs=None uses the system's CAs.
        client.tls_set(ca_certs=settings.ca_file)
    password = os.environ.get("MQTT_JWT") or os.environ.get("MQTT_PASSWORD")
    if password:
        # With a JWT the broker takes the user from the token's `sub` claim; paho only sends a
        # password together with a user name, so the client id stands in when none is given.
        client.username_pw_set(settings.username or settings.client_id, password)
    elif settings.username:
        client.username_pw_set(settings.username)
    return client


def host_and_port(settings: argparse.Namespace):
    url = urlsplit(settings.url)
    return url.hostname, url.port or (443 if url.scheme == "wss" else 80)


def reason_value(reason_code) -> int:
    """The number of a reason code: paho 1.6 and 2.x give different classes, both with .value."""
    return int(getattr(reason_code, "value", reason_code))


def session_present(flags) -> bool:
    """CONNACK's Session Present flag: a dict in paho 1.6, an object in 2.x."""
    if isinstance(flags, dict):
        return bool(flags.get("session present"))
    return bool(getattr(flags, "session_present", False))


def connect(client: mqtt.Client, settings: argparse.Namespace, timeout: float = 15, **connect_args) -> bool:
    """Connects, starts paho's network thread and waits for the CONNACK; returns Session Present.

    Exits with the broker's reason (e.g. 0x86 bad user name or password, 0x87 not authorized)
    when the CONNECT is refused.
    """
    result = {}
    done = threading.Event()

    def on_connect(_client, _userdata, flags, reason_code, _properties=None):
        result["rc"] = reason_value(reason_code)
        result["present"] = session_present(flags)
        done.set()

    client.on_connect = on_connect
    host, port = host_and_port(settings)
    client.connect(host, port, keepalive=30, **connect_args)
    client.loop_start()
    if not done.wait(timeout):
        client.loop_stop()
        sys.exit(f"no CONNACK from {settings.url} within {timeout} s")
    # Later reconnects (paho retries by itself) must not run this first-connect handler again.
    client.on_connect = None
    if result["rc"] != 0:
        client.loop_stop()
        sys.exit(f"connection refused by {settings.url}: reason code 0x{result['rc']:02x}")
    return result["present"]


def log(message: str) -> None:
    """Human-readable progress goes to stderr, so stdout stays machine-readable."""
    print(message, file=sys.stderr, flush=True)

