# A training worker: CUDA torch + the engine. One container per GPU (see docker-compose.yml).
FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 DATA_DIR=/data DEBIAN_FRONTEND=noninteractive
# libtcmalloc-minimal4: preloaded into the engine processes (ddpm/allocator.py); g++: builds the
# native CPU kernels (ddpm/nn/native.py) for the CPU the container runs on, at its first CPU job
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-venv libtcmalloc-minimal4 g++ \
    && rm -rf /var/lib/apt/lists/* && python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /app
# torch first (the big layer), from PyPI's default CUDA build, pinned like everywhere else.
RUN pip install torch==2.13.0
COPY pyproject.toml README.md ./
COPY ddpm/ ddpm/
COPY backend/ backend/
COPY worker/ worker/
RUN pip install '.[worker]'
CMD ["python", "-m", "worker"]
