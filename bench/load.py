"""Load: N concurrent clients over HTTP and over MQTT, for a fixed time, against one server.

    python bench/load.py [--clients-http 4] [--clients-mqtt 2] [--seconds 60]
    python bench/load.py --soak                 # 600 s, server RSS sampled every 30 s

Starts its own Mosquitto and its own ``python -m analytic serve`` (GE2E, free ports, 127.0.0.1
only, bus on that broker under a private prefix, a throw-away data dir). Every client sends
the verification of bench/verify.py's pair (the first 4 s of two LibriSpeech clips of speaker
2609) one request at a time, until the time is up or ``--max-requests`` per client is reached.
HTTP clients post to ``/speaker_verification``; MQTT clients are devices: each publishes on
``<prefix>/<device>/verification/request`` naming its own ``<prefix>/<device>/reply/...`` as
``reply_to`` and waits for the answer there.

Printed: requests served per door, p50/p95/p99 of the successful ones, errors by kind (HTTP
status and error code, bus error codes such as ``busy``, timeouts, connection errors), and the
server's resident memory (VmRSS, peak VmHWM from /proc/<pid>/status) at start and end.
Back-pressure is expected beyond ``VOICEGATE_MAX_CONCURRENT`` + ``VOICEGATE_MAX_WAITING``
(one per core + 1): HTTP 503 ``busy`` (and bus ``busy``) are counted as errors by kind, and a client
sleeps ``Retry-After`` (1 s for the bus) before its next request.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.verify import CLIPS, four_second_wav, free_port  # noqa: E402
from bus_adapter.messages import AudioFile, VerificationRequest  # noqa: E402
from tests.mqtt_broker import BusProbe, MosquittoBroker  # noqa: E402  (test helper, reused)

SOAK_SECONDS = 600
SOAK_SAMPLE_S = 30
REQUEST_TIMEOUT_S = 60.0
BUSY_SLEEP_S = 1.0  # the bus's ``busy`` carries no Retry-After; back off as HTTP says (1 s)


class Tally:
    """Latencies of successful requests and counts of errors by kind, for one door."""

    def __init__(self) -> None:
        self.latencies_ms: list[float] = []
        self.errors: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()

    def ok(self, latency_ms: float) -> None:
        with self._lock:
            self.latencies_ms.append(latency_ms)

    def error(self, kind: str) -> None:
        with self._lock:
            self.errors[kind] += 1


def quantile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def memory_kb(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak) of a process, in kB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0])
    return values


def start_server(broker_port: int, prefix: str, data_dir: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "VOICEGATE_ENCODER": "ge2e", "VOICEGATE_MQTT_ENABLED": "true",
           "VOICEGATE_MQTT_HOST": "127.0.0.1", "VOICEGATE_MQTT_PORT": str(broker_port),
           "VOICEGATE_MQTT_PREFIX": prefix, "VOICEGATE_MQTT_CLIENT_ID": f"{prefix}-analytic",
           "VOICEGATE_MQTT_SESSION_EXPIRY_S": "0", "VOICEGATE_MQTT_DISCOVERY_PREFIX": "",
           "VOICEGATE_DATA_DIR": data_dir}
    process = subprocess.Popen(
        [sys.executable, "-m", "analytic", "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited with {process.returncode} while starting")
        try:
            health = requests.get(url + "/health", timeout=1)
            if health.status_code == 200 and health.json().get("bus") == "connected":
                return process, url
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    process.kill()
    raise SystemExit("the server (HTTP and bus) did not become ready within 120 s")


def http_client(url: str, pair: list[bytes], stop_at: float, max_requests: int,
                tally: Tally) -> None:
    session = requests.Session()
    files = {"file1": ("a.wav", pair[0]), "file2": ("b.wav", pair[1])}
    for _ in range(max_requests):
        if time.monotonic() >= stop_at:
            return
        started = time.perf_counter()
        try:
            response = session.post(url + "/speaker_verification", files=files,
                                    timeout=REQUEST_TIMEOUT_S)
        except requests.Timeout:
            tally.error("timeout")
            continue
        except requests.ConnectionError as exc:
            tally.error(f"connection error ({type(exc).__name__})")
            time.sleep(BUSY_SLEEP_S)
            continue
        latency_ms = 1000 * (time.perf_counter() - started)
        if response.status_code == 200:
            tally.ok(latency_ms)
            continue
        try:
            code = response.json()["error"]["code"]
        except (ValueError, KeyError, TypeError):
            code = "?"
        tally.error(f"HTTP {response.status_code} {code}")
        retry_after = response.headers.get("Retry-After")
        if retry_after is not None:
            try:
                time.sleep(min(float(retry_after), 5.0))
            except ValueError:
                time.sleep(BUSY_SLEEP_S)


class BusClient:
    """One requester on the bus: publishes a request naming its own ``reply_to``, waits for
    the result or error there."""

    def __init__(self, broker_port: int, prefix: str) -> None:
        self.name = f"load-{uuid.uuid4().hex[:8]}"
        self.reply_to = f"{prefix}/{self.name}/reply/answers"  # its own reply space
        self.request_topic = f"{prefix}/{self.name}/verification/request"
        self._answers: dict[str, dict] = {}
        self._cond = threading.Condition()
        self.probe = BusProbe(broker_port, [self.reply_to], client_id=self.name)
        self.probe.client.on_message = self._on_message

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        try:
            answer = json.loads(msg.payload)
        except ValueError:
            return
        with self._cond:
            self._answers[answer.get("request_id")] = answer
            self._cond.notify_all()

    def run(self, pair: list[bytes], stop_at: float, max_requests: int, tally: Tally) -> None:
        try:
            for _ in range(max_requests):
                if time.monotonic() >= stop_at:
                    return
                request_id = f"{self.name}-{uuid.uuid4().hex[:12]}"
                payload = VerificationRequest(
                    file1=AudioFile(name="a.wav", data=pair[0]),
                    file2=AudioFile(name="b.wav", data=pair[1]),
                    request_id=request_id, requestor_id=self.name, reply_to=self.reply_to,
                ).model_dump_json(exclude_none=True)
                started = time.perf_counter()
                self.probe.publish(self.request_topic, payload)
                with self._cond:
                    if not self._cond.wait_for(lambda rid=request_id: rid in self._answers,
                                               REQUEST_TIMEOUT_S):
                        tally.error("timeout")
                        continue
                    answer = self._answers.pop(request_id)
                latency_ms = 1000 * (time.perf_counter() - started)
                if "decision" in answer:
                    tally.ok(latency_ms)
                    continue
                code = answer.get("code", "?")
                tally.error(f"bus {code}")
                if code == "busy":
                    time.sleep(BUSY_SLEEP_S)
        finally:
            self.probe.close()


def print_door(door: str, clients: int, tally: Tally, seconds: float) -> None:
    served = len(tally.latencies_ms)
    failed = sum(tally.errors.values())
    print(f"{door}: {clients} clients, {served} served ({served / seconds:.2f}/s), "
          f"{failed} errors")
    if served:
        ordered = sorted(tally.latencies_ms)
        print(f"  latency of served: p50 {quantile(ordered, 0.5):7.1f} ms   "
              f"p95 {quantile(ordered, 0.95):7.1f} ms   p99 {quantile(ordered, 0.99):7.1f} ms   "
              f"max {ordered[-1]:7.1f} ms")
    for kind, count in tally.errors.most_common():
        print(f"  error {kind}: {count}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients-http", type=int, default=4)
    parser.add_argument("--clients-mqtt", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--soak", action="store_true",
                        help=f"run {SOAK_SECONDS} s and sample RSS every {SOAK_SAMPLE_S} s")
    parser.add_argument("--max-requests", type=int, default=100_000,
                        help="per client, an upper bound besides the time")
    args = parser.parse_args()
    seconds = SOAK_SECONDS if args.soak else args.seconds
    sample_every = SOAK_SAMPLE_S if args.soak else max(1.0, seconds / 4)
    pair = [four_second_wav(p) for p in CLIPS]
    prefix = f"voicegate-load-{uuid.uuid4().hex[:8]}"

    workdir = tempfile.TemporaryDirectory(prefix="voicegate-load-")
    broker = MosquittoBroker(Path(workdir.name) / "broker", free_port())
    process = None
    clients: list[BusClient] = []
    try:
        broker.start()
        data_dir = Path(workdir.name) / "data"
        data_dir.mkdir()
        started = time.monotonic()
        process, url = start_server(broker.port, prefix, str(data_dir))
        print(f"server pid {process.pid} at {url}, ready (HTTP and bus) in "
              f"{time.monotonic() - started:.1f} s; broker 127.0.0.1:{broker.port}, "
              f"prefix {prefix}")
        print(f"{args.clients_http} HTTP + {args.clients_mqtt} MQTT clients, {seconds:.0f} s, "
              "verification of two 4 s clips")
        at_start = memory_kb(process.pid)
        print(f"server memory at start (ready, before load): VmRSS {at_start['VmRSS']} kB, "
              f"VmHWM {at_start['VmHWM']} kB")

        http_tally, bus_tally = Tally(), Tally()
        clients = [BusClient(broker.port, prefix) for _ in range(args.clients_mqtt)]
        t0 = time.monotonic()
        stop_at = t0 + seconds
        threads = [threading.Thread(target=http_client, daemon=True,
                                    args=(url, pair, stop_at, args.max_requests, http_tally))
                   for _ in range(args.clients_http)]
        threads += [threading.Thread(target=c.run, daemon=True,
                                     args=(pair, stop_at, args.max_requests, bus_tally))
                    for c in clients]
        for thread in threads:
            thread.start()
        samples = [(0.0, at_start)]
        next_sample = t0 + sample_every
        while any(t.is_alive() for t in threads):
            if process.poll() is not None:
                raise SystemExit(f"the server died with {process.returncode} under load")
            now = time.monotonic()
            if now >= next_sample and now < stop_at:
                samples.append((now - t0, memory_kb(process.pid)))
                next_sample += sample_every
            time.sleep(0.2)
            if now > stop_at + REQUEST_TIMEOUT_S + 10:
                print("warning: clients still busy well after the end; not waiting for them")
                break
        elapsed = time.monotonic() - t0
        at_end = memory_kb(process.pid)
        samples.append((elapsed, at_end))

        print(f"\nran {elapsed:.1f} s (last requests finish after the {seconds:.0f} s mark)")
        print_door("HTTP", args.clients_http, http_tally, elapsed)
        print_door("MQTT", args.clients_mqtt, bus_tally, elapsed)
        print(f"\nserver memory (VmRSS / VmHWM, kB), sampled every {sample_every:.0f} s:")
        for at, values in samples:
            print(f"  t={at:6.0f} s   {values['VmRSS']:>8}   {values['VmHWM']:>8}")
        growth = at_end["VmRSS"] - at_start["VmRSS"]
        print(f"RSS start {at_start['VmRSS'] / 1024:.1f} MB, end {at_end['VmRSS'] / 1024:.1f} MB, "
              f"growth {growth / 1024:+.1f} MB ({100 * growth / at_start['VmRSS']:+.1f} %); "
              f"peak (VmHWM) {at_end['VmHWM'] / 1024:.1f} MB")
        if len(samples) >= 4:
            # growth over the second half of the run: warm-up allocations excluded
            mid = samples[len(samples) // 2]
            late = at_end["VmRSS"] - mid[1]["VmRSS"]
            print(f"RSS growth from t={mid[0]:.0f} s to the end: {late / 1024:+.1f} MB")
    finally:
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        broker.stop()  # SIGTERM, then SIGKILL if it lingers
        workdir.cleanup()


if __name__ == "__main__":
    main()
