# A training worker: runs the backend's jobs from Redis on a GPU (or on the CPU when it has none).
# Build from the repository root:  docker build -f docker/worker.Dockerfile -t alc-worker .
# Run with a GPU:  docker run --gpus 1 -e REDIS_URL=... -e LABEL_STUDIO_URL=... -e LABEL_STUDIO_API_KEY=... \
#                  -v /mnt/alc-workspace:/data/workspace alc-worker
#
# Why python:3.11-slim and not an nvidia/cuda base: PyPI's Linux wheel of torch 2.14.1 is a CUDA
# build that depends on NVIDIA's pip packages (CUDA runtime, cuDNN, cuBLAS, NCCL, ...), so pip
# installs every CUDA library torch needs. The only piece from outside is the driver (libcuda),
# which the NVIDIA Container Toolkit mounts from the host when the container is given a GPU. An
# nvidia/cuda runtime base would add a second copy of the CUDA libraries and a Python of its own.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility

# torch and torchvision from PyPI (the CUDA build), at the versions pinned in requirements.txt,
# in their own layer: it is large and changes less often than the code.
RUN pip install torch==2.14.1 torchvision==0.29.1

WORKDIR /opt/alc-backend
# setup.py reads README.md and every requirements*.txt (the extras); pyproject.toml names the build backend.
COPY setup.py pyproject.toml README.md requirements*.txt ./
COPY alc_backend/ alc_backend/
RUN pip install '.[queue,mobilesam]'

# The same non-root user (uid 1000) as the backend image, so both write the shared workspace.
RUN useradd --create-home --uid 1000 alc \
    && mkdir -p /data/workspace \
    && chown alc:alc /data/workspace
USER alc
WORKDIR /home/alc
ENV MODEL_DIR=/data/workspace

# The worker prints its device (cuda or cpu) when it starts; it serves no HTTP.
CMD ["alc-backend", "worker", "--queues", "alc"]
