"""Publish two recordings as a verification request and print the answer.

    python -m bus_adapter.publish_pair a.wav b.wav [--threshold 0.75] [--request-id door-1]
    python -m bus_adapter.publish_pair a.wav b.wav --print > request.json   # for mosquitto_pub

The answer comes back on a private MQTT 5 response topic (``<prefix>/reply/<uuid>``) with the
request id as correlation data, so concurrent callers never see each other's answers. The
broker connection comes from the same ``VOICEGATE_MQTT_*`` settings as the analytic.
Exit status: 0 result, 2 error reply, 1 no answer in time, 3 broker unreachable.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from bus_adapter.messages import AudioFile, VerificationRequest
from bus_adapter.session import apply_broker_settings
from bus_adapter.settings import BusSettings
from bus_adapter.topics import VERIFICATION, Topics


def build_request(args: argparse.Namespace) -> VerificationRequest:
    return VerificationRequest(
        file1=AudioFile(name=args.file1.name, data=args.file1.read_bytes()),
        file2=AudioFile(name=args.file2.name, data=args.file2.read_bytes()),
        threshold=args.threshold,
        request_id=args.request_id or str(uuid.uuid4()),
        requestor_id=args.requestor_id,
        requestor_type=args.requestor_type,
        reply_to=args.reply_to,
    )


def round_trip(settings: BusSettings, request: VerificationRequest, timeout: float) -> int:
    topics = Topics.from_settings(settings)
    # Logged in as a broker user, it is that device: its own topics and reply space (the ACL
    # grants nothing else); anonymous, the shared single-tenant topics.
    device = settings.mqtt_username or None
    request_topic = topics.device_request_of(VERIFICATION, device) if device else topics.request
    response_topic = f"{topics.reply_space(device)}/{uuid.uuid4().hex}"
    correlation = (request.request_id or "").encode()
    answer: list[bytes] = []
    subscribed, answered = threading.Event(), threading.Event()

    def on_message(client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        if getattr(msg.properties, "CorrelationData", None) == correlation:
            answer.append(bytes(msg.payload))
            answered.set()

    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=f"voicegate-cli-{uuid.uuid4().hex[:12]}",
        protocol=mqtt.MQTTv5,
    )
    apply_broker_settings(client, settings)
    client.on_message = on_message
    client.on_subscribe = lambda *args: subscribed.set()
    try:
        client.connect(settings.mqtt_host, settings.mqtt_port, keepalive=30)
    except OSError as exc:
        print(f"broker {settings.mqtt_host}:{settings.mqtt_port} unreachable: {exc}",
              file=sys.stderr)
        return 3
    client.loop_start()
    try:
        client.subscribe(response_topic, qos=1)
        if not subscribed.wait(timeout):
            print("the broker did not confirm the subscription", file=sys.stderr)
            return 1
        properties = Properties(PacketTypes.PUBLISH)
        properties.ResponseTopic = response_topic
        properties.CorrelationData = correlation
        payload = request.model_dump_json(exclude_none=True)
        client.publish(request_topic, payload, qos=1, properties=properties).wait_for_publish(
            timeout
        )
        if not answered.wait(timeout):
            print(f"no answer within {timeout:g} s (request {request.request_id} stays queued "
                  "for the analytic if it is down)", file=sys.stderr)
            return 1
    finally:
        client.disconnect()
        client.loop_stop()
    print(answer[0].decode())
    return 0 if "decision" in json.loads(answer[0]) else 2  # else it is an error reply


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bus_adapter.publish_pair",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("file1", type=Path)
    parser.add_argument("file2", type=Path)
    parser.add_argument("--threshold", type=float)
    parser.add_argument("--request-id", help="default: a new UUID")
    parser.add_argument("--requestor-id")
    parser.add_argument("--requestor-type")
    parser.add_argument("--reply-to", help="also send the answer to this topic")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds (default 60)")
    parser.add_argument("--host", help="broker (VOICEGATE_MQTT_HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="broker port (VOICEGATE_MQTT_PORT, 1883)")
    parser.add_argument("--prefix", help="topic prefix (VOICEGATE_MQTT_PREFIX, voicegate)")
    parser.add_argument("--print", action="store_true", dest="print_only",
                        help="print the request JSON instead of publishing it")
    args = parser.parse_args(argv)
    overrides = {f"mqtt_{k}": v for k in ("host", "port", "prefix")
                 if (v := getattr(args, k)) is not None}
    settings = BusSettings(**overrides)
    request = build_request(args)
    if args.print_only:
        print(request.model_dump_json(exclude_none=True))
        return 0
    return round_trip(settings, request, args.timeout)


if __name__ == "__main__":
    sys.exit(main())
