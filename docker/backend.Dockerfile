# The web backend (Label Studio ML backend) on CPU.
# Build from the repository root:  docker build -f docker/backend.Dockerfile -t alc-backend .
# With REDIS_URL set it only enqueues jobs; training runs in the workers (docker/worker.Dockerfile).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# CPU-only torch and torchvision first, at the versions pinned in requirements.txt: PyPI's Linux
# wheels are CUDA builds with gigabytes of CUDA libraries. The CPU wheels carry a "+cpu" local
# version, which "==2.14.1" matches, so the project's install below keeps them.
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.14.1 torchvision==0.29.1

WORKDIR /opt/alc-backend
# setup.py reads README.md and every requirements*.txt (the extras); pyproject.toml names the build backend.
COPY setup.py pyproject.toml README.md requirements*.txt ./
COPY alc_backend/ alc_backend/
RUN pip install '.[queue,mobilesam]'

# A non-root user; the workspace folder belongs to it, so a new named volume mounted there does too.
# The worker image uses the same uid, so both can write the shared workspace.
RUN useradd --create-home --uid 1000 alc \
    && mkdir -p /data/workspace \
    && chown alc:alc /data/workspace
USER alc
WORKDIR /home/alc
ENV MODEL_DIR=/data/workspace

EXPOSE 9090
# `status` reads /health with the login in BASIC_AUTH_USER/BASIC_AUTH_PASS, if set, and fails without an answer.
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["alc-backend", "status", "--backend", "http://127.0.0.1:9090"]
CMD ["alc-backend", "serve", "--host", "0.0.0.0", "--port", "9090"]
