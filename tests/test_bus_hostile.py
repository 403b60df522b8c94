"""Hostile payloads on the bus's request topics: each gets an error reply naming a code, and
the adapter keeps serving the next good request."""

from __future__ import annotations

import json
import uuid

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from analytic.cli.settings import Settings
from analytic.service import VerificationService
from bus_adapter.adapter import BusAdapter
from bus_adapter.messages import AudioFile, VerificationRequest
from tests.conftest import MALE_A, free_port
from tests.hypothesis_guard import skip_broken_lazy_modules
from tests.mqtt_broker import BusProbe

pytestmark = pytest.mark.slow  # real services or processes (script/test --fast skips)

REQUEST = "voicegate/verification/request"
ERROR = "voicegate/error"
RESULT = "voicegate/verification/result"

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                 max_size=4),
    max_leaves=12,
)
payloads = st.one_of(
    st.binary(max_size=300),
    json_values.map(lambda value: json.dumps(value).encode()),
    st.fixed_dictionaries({"file1": json_values, "file2": json_values}).map(
        lambda value: json.dumps(value).encode()),
    st.text(alphabet="ABCDEFGHIJ+/=!*", max_size=200).map(
        lambda garbage: json.dumps({"file1": {"name": "a", "data": garbage},
                                    "file2": {"name": "b", "data": garbage}}).encode()),
)


def test_random_payloads_get_errors_and_the_bus_keeps_serving(mqtt_broker, encoder):
    skip_broken_lazy_modules()
    settings = Settings(port=free_port(), mqtt_port=mqtt_broker.port,
                        mqtt_client_id=f"analytic-{uuid.uuid4().hex[:8]}", mqtt_workers=1)
    adapter = BusAdapter(VerificationService(settings, encoder))
    adapter.start()
    probe = BusProbe(mqtt_broker.port, [ERROR, RESULT])
    sent = []
    try:
        assert adapter.wait_connected(10)

        @hypothesis_settings(max_examples=40, deadline=None, database=None,
                             suppress_health_check=list(HealthCheck))
        @given(payloads)
        def send(payload: bytes) -> None:
            sent.append(payload)
            probe.publish(REQUEST, payload).wait_for_publish(10)

        send()
        probe.wait_for(lambda m: m.topic == ERROR, timeout=60, count=len(sent))
        errors = [json.loads(m.payload) for m in probe.matching(lambda m: m.topic == ERROR)]
        assert all(error["code"] and error["message"] for error in errors)
        assert not probe.matching(lambda m: m.topic == RESULT)

        good = VerificationRequest(
            file1=AudioFile(name="a.flac", data=MALE_A[0].read_bytes()),
            file2=AudioFile(name="b.flac", data=MALE_A[1].read_bytes()),
            request_id="after-the-storm",
        ).model_dump_json(exclude_none=True)
        probe.publish(REQUEST, good)
        result = probe.wait_for(lambda m: m.topic == RESULT, timeout=60)
        assert json.loads(result[0].payload)["request_id"] == "after-the-storm"
    finally:
        probe.close()
        adapter.stop(drain_timeout=5)
