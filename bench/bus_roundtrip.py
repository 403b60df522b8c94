"""Bus round trip: publish a verification request, time until its result arrives.

    python bench/bus_roundtrip.py [--runs 50]                  # own Mosquitto on a free port
    python bench/bus_roundtrip.py --host 127.0.0.1 --port 1883  # an existing broker
    python bench/bus_roundtrip.py --port 1883 --external        # the analytic already serving it
    python bench/bus_roundtrip.py --kind identify               # "who is speaking?" instead

The pair is the first 4 s of two LibriSpeech recordings of speaker 2609 (tests/data), as in
bench/verify.py. Unless ``--external``, the analytic runs in this process (real GE2E, real
``BusAdapter``) under a private topic prefix and a throw-away session, so a production analytic
on the same broker is not disturbed. Latency is measured from just before ``publish`` to the
moment the requester's client receives the result on ``<prefix>/verification/result``;
requests are sent one at a time. With the in-process analytic, the time ``verify`` took for
each request is subtracted from its round trip, so what the bus itself costs is printed apart
from the model's time (which varies with the machine's load).

``--kind identify`` times ``<prefix>/identify/request`` to ``<prefix>/identify/result`` instead:
one 4 s clip against a household of two (speaker 2609 enrolled from the other clip, 3331 from
one of hers), in a throw-away voiceprint store; the in-process figure inside is
``HouseholdService.identify``. With ``--external`` the serving analytic's own household is used.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from analytic.cli.settings import Settings  # noqa: E402
from analytic.encoders import load_encoder  # noqa: E402
from analytic.household import build_household  # noqa: E402
from analytic.schemas import EnrolOptions  # noqa: E402
from analytic.service import VerificationService  # noqa: E402
from bench.verify import CLIPS, four_second_wav, percentiles  # noqa: E402
from bus_adapter.adapter import BusAdapter  # noqa: E402
from bus_adapter.messages import AudioFile, IdentifyRequest, VerificationRequest  # noqa: E402
from tests.mqtt_broker import BusProbe, MosquittoBroker  # noqa: E402  (test helper, reused)

OTHER_MEMBER = ROOT / "tests/data/librispeech/3331-159605-0005.flac"  # --kind identify
WARMUP = 3


def report(label: str, samples_ms: list[float]) -> None:
    print(f"{label + ':':<72}{percentiles(samples_ms)}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Timed:
    """Wraps the core call the adapter makes (``verify`` or ``identify``) and notes how long
    each took, so the bus's own share of a round trip can be told apart from the model's
    (which varies with machine load)."""

    def __init__(self, call: Any) -> None:
        self._call = call
        self._took_ms: dict[str | None, float] = {}
        self._cond = threading.Condition()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        result = self._call(*args, **kwargs)
        with self._cond:
            self._took_ms[result.request_id] = 1000 * (time.perf_counter() - started)
            self._cond.notify_all()
        return result

    def took_ms(self, request_id: str) -> float:
        """The result is on the bus before the call returns, so wait for the timing."""
        with self._cond:
            if not self._cond.wait_for(lambda: request_id in self._took_ms, timeout=30):
                raise SystemExit(f"the core call of {request_id} never returned")
            return self._took_ms[request_id]


def request_payload(kind: str, clips: list[bytes], request_id: str) -> str:
    if kind == "identify":
        return IdentifyRequest(file=AudioFile(name="b.wav", data=clips[1]), site="bench",
                               request_id=request_id).model_dump_json(exclude_none=True)
    return VerificationRequest(
        file1=AudioFile(name="a.wav", data=clips[0]),
        file2=AudioFile(name="b.wav", data=clips[1]),
        request_id=request_id,
    ).model_dump_json(exclude_none=True)


class Requester:
    """The home-automation side: publishes a request, notes when its result arrives."""

    def __init__(self, host: str, port: int, result_topic: str) -> None:
        self._arrived: dict[str, float] = {}
        self._cond = threading.Condition()
        self.probe = BusProbe(port, [result_topic], host=host)
        self.probe.client.on_message = self._on_message

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        received = time.perf_counter()
        request_id = json.loads(msg.payload).get("request_id")
        with self._cond:
            self._arrived[request_id] = received
            self._cond.notify_all()

    def round_trip(self, topic: str, payload: str, request_id: str, timeout: float) -> float:
        started = time.perf_counter()
        self.probe.publish(topic, payload)
        with self._cond:
            if not self._cond.wait_for(lambda: request_id in self._arrived, timeout):
                raise SystemExit(f"no result for {request_id} within {timeout} s")
            return 1000 * (self._arrived[request_id] - started)

    def close(self) -> None:
        self.probe.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, help="an existing broker; default: start one")
    parser.add_argument("--external", action="store_true",
                        help="do not start an analytic; time the one serving the broker")
    parser.add_argument("--prefix", default="voicegate", help="with --external only")
    parser.add_argument("--kind", choices=("verification", "identify"), default="verification",
                        help="the request timed (default verification)")
    args = parser.parse_args()
    pair = [four_second_wav(p) for p in CLIPS]

    broker = None
    if args.port is None:
        broker = MosquittoBroker(Path(tempfile.mkdtemp(prefix="bus-bench-")), free_port())
        broker.start()
        port = broker.port
        print(f"broker: own Mosquitto on 127.0.0.1:{port}")
    else:
        port = args.port
        print(f"broker: {args.host}:{port}")

    adapter = household = timer = None
    prefix = args.prefix
    store = tempfile.TemporaryDirectory(prefix="bus-bench-store-")
    try:
        if not args.external:
            prefix = f"voicegate-bench-{uuid.uuid4().hex[:8]}"
            settings = Settings(mqtt_host=args.host, mqtt_port=port, mqtt_prefix=prefix,
                                mqtt_client_id=f"{prefix}-analytic", mqtt_session_expiry_s=0,
                                mqtt_discovery_prefix="", data_dir=store.name)
            service = VerificationService(settings, load_encoder(settings))
            if args.kind == "identify":
                household = build_household(service)
                household.enrol(EnrolOptions(external_id="2609"), [("a.wav", pair[0])])
                household.enrol(EnrolOptions(external_id="3331"),
                                [("c.wav", four_second_wav(OTHER_MEMBER))])
                timer = household.identify = Timed(household.identify)  # type: ignore[method-assign]
            else:
                timer = service.verify = Timed(service.verify)  # type: ignore[method-assign]
            adapter = BusAdapter(service, household=household)
            adapter.start()
            if not adapter.wait_connected(30):
                raise SystemExit("the analytic could not connect to the broker")

        requester = Requester(args.host, port, f"{prefix}/{args.kind}/result")
        try:
            timings = []
            for i in range(WARMUP + args.runs):
                request_id = f"bench-{i}"
                payload = request_payload(args.kind, pair, request_id)
                latency = requester.round_trip(f"{prefix}/{args.kind}/request", payload,
                                               request_id, timeout=60)
                if i >= WARMUP:
                    timings.append(latency)
            report(f"bus round trip, {args.kind} (publish request -> result received)", timings)
            if timer is not None:
                call = "identify()" if args.kind == "identify" else "verify()"
                inside = [timer.took_ms(f"bench-{i}") for i in range(WARMUP, WARMUP + args.runs)]
                overhead = [total - core for total, core in zip(timings, inside, strict=True)]
                report(f"  of which {call} in the analytic", inside)
                report(f"  of which the bus (round trip - {call}, per request)", overhead)
        finally:
            requester.close()
    finally:
        if adapter is not None:
            adapter.stop(drain_timeout=5)
        if household is not None:
            household.close()
        store.cleanup()
        if broker is not None:
            broker.stop()


if __name__ == "__main__":
    main()
