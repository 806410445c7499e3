# The msd application image: one image for every part of server mode (compose.yml runs it as
# api, worker, scheduler, replicator and the one-shot migrate). Build: docker build -t msd .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN groupadd --system --gid 10001 msd \
    && useradd --system --uid 10001 --gid msd --home-dir /app --shell /usr/sbin/nologin msd

# PNG charts draw company names with the image's fonts: Arabic, CJK and emoji need these
# (README: Fonts for PNG charts; about 19 MB).
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        fonts-dejavu-core fonts-wqy-microhei fonts-noto-color-emoji \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY . /app
# Editable on purpose: the ClickHouse DDL is read from the source tree's clickhouse/ folder,
# which is not a Python package and would be missing from a plain install.
RUN pip install -e .

# Files stay owned by root: the service runs as msd and can read, not change, its own code.
USER msd

# Inside the container the API must listen on the container's interface; compose decides what
# is published. The data folder is only used by embedded mode, which containers do not run.
ENV MSD_HOST=0.0.0.0 \
    MSD_DATA_DIR=/tmp/msd
EXPOSE 8000

CMD ["msd", "serve", "--no-replicate"]
