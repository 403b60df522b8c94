"""The bus door's settings (``VOICEGATE_MQTT_*``): broker, session, topics, workers."""

from __future__ import annotations

from pydantic import Field, SecretStr, model_validator

from analytic.settings import MEGABYTE, VoicegateSettings


class BusSettings(VoicegateSettings):
    """Read by ``bus_adapter`` only; the core never sees them."""

    mqtt_enabled: bool = Field(
        True, description="Start the MQTT bus adapter beside HTTP in `python -m analytic serve`."
    )
    mqtt_host: str = Field("127.0.0.1", description="MQTT broker host.")
    mqtt_port: int = Field(1883, ge=1, le=65535, description="MQTT broker port (8883 for TLS).")
    mqtt_username: str | None = Field(None, description="Broker user name, if it wants one.")
    mqtt_password: SecretStr | None = Field(None, description="Broker password (never logged).")
    mqtt_tls: bool = Field(
        False, description="Connect with TLS; implied by a CA file. No CA file = system CAs."
    )
    mqtt_tls_ca_file: str | None = Field(None, description="CA bundle that signed the broker.")
    mqtt_tls_certfile: str | None = Field(None, description="Client certificate (mutual TLS).")
    mqtt_tls_keyfile: str | None = Field(None, description="Key of the client certificate.")
    mqtt_client_id: str = Field(
        "voicegate-analytic",
        min_length=1,
        max_length=128,
        description="Fixed client id: the broker keeps this session (and queues requests for it) "
        "while the analytic is down. Every instance needs its own.",
    )
    mqtt_keepalive: int = Field(60, ge=5, le=65535, description="MQTT keepalive, seconds.")
    mqtt_session_expiry_s: int = Field(
        7 * 24 * 3600,
        ge=0,
        le=0xFFFFFFFF,
        description="How long the broker keeps the session (and queued requests) after the "
        "analytic disconnects, seconds.",
    )
    mqtt_reconnect_min_s: int = Field(1, ge=1, description="First reconnect delay, seconds.")
    mqtt_reconnect_max_s: int = Field(
        30, ge=1, description="Reconnect delay doubles up to this many seconds."
    )
    mqtt_prefix: str = Field(
        "voicegate",
        min_length=1,
        pattern=r"^[^#+/$]([^#+]*[^#+/])?$",
        description="Topic prefix: requests on <prefix>/verification/request, and so on.",
    )
    mqtt_share_group: str | None = Field(
        None,
        pattern=r"^[^#+/]*$",
        description="Subscribe to requests as $share/<group>/... so instances split the work; "
        "empty or unset = a plain subscription.",
    )
    mqtt_shared_topics: bool = Field(
        True,
        description="Also serve the shared request topics <prefix>/<kind>/request and "
        "<prefix>/stream/...: one tenant, every publisher a device (no enrolment, replies only "
        "under <prefix>/reply/). false = per-device topics only.",
    )
    mqtt_max_sites: int = Field(
        256, ge=1,
        description="Most sites with a retained <prefix>/speaker/<site> state and discovery "
        "config; identifications naming a further site publish no state.",
    )
    mqtt_max_payload_bytes: int = Field(
        20 * MEGABYTE, gt=0, description="Largest request payload on the bus (as HTTP's limit)."
    )
    mqtt_workers: int | None = Field(
        None, ge=1, description="Threads serving bus requests; unset = cores.")
    mqtt_queue_size: int = Field(
        16, ge=1, description="Requests waiting for a worker; beyond it the reply is `busy`."
    )
    mqtt_dedup_window_s: float = Field(
        300.0, ge=0.0, description="A request_id seen again within this window is answered once."
    )
    mqtt_discovery_prefix: str = Field(
        "homeassistant",
        pattern=r"^[^#+]*$",
        description="Home Assistant discovery prefix; empty = no discovery.",
    )
    mqtt_sifis_topic: str = Field(
        "",
        pattern=r"^[^#+]*$",
        description="Also publish SIFIS-Home wrapped results here; empty = off.",
    )


    @model_validator(mode="after")
    def _size_the_bus_workers(self) -> BusSettings:
        """Unset, the bus serves one request per core (``cores``, counted by the base)."""
        if self.mqtt_workers is None:
            self.mqtt_workers = self.cores
        return self
