"""Property-based fuzzing of the HTTP API from its own OpenAPI schema (schemathesis, in-process ASGI).

Every operation of the schema gets schema-valid and schema-invalid requests (schemathesis's examples, coverage and
fuzzing phases; at most MAX_EXAMPLES fuzzed cases per operation; derandomized, so a CI run is reproducible). Each
response must not be a 5xx and must conform to the schema: documented status code, content type and body, invalid
data rejected with a 4xx, valid data accepted, and, with an API key, requests without it refused with 401.

Schemathesis's own "valid data must be accepted" check is replaced by a stricter-in-kind one (`_check_refusal`):
a schema-valid request may be refused only by a domain rule the schema cannot express (a query without searchable
characters, an empty or binary document, an upload type or size), never by request validation, i.e. never with
a 422 listing a field whose type or shape was wrong.

Two apps are fuzzed: one without an API key (its schema declares no security) and one with a key (every operation
but /health declares bearer auth). Each runs over its own copy of the sample index with the hashing embedder, so
the uploads and deletes the fuzzer sends change nothing shared.

The app objects are built at import, because schemathesis's lazy `from_fixture` loader does not run under pytest 9,
but nothing is read before the first request: the schema comes from `app.openapi()`, and the lifespan that opens
the index starts with the first fuzzed call, after `_index_copies` has put the index copies in place.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from api.main import create_app
from tests.support import make_settings

# CI: 25 fuzzed cases per operation, the same ones every run. For a deeper, fresh search locally:
# ZHQA_FUZZ_EXAMPLES=300 ZHQA_FUZZ_RANDOM=1 .venv/bin/python -m pytest tests/reliability/test_fuzz_schemathesis.py
MAX_EXAMPLES = int(os.environ.get("ZHQA_FUZZ_EXAMPLES", "25"))
DERANDOMIZE = os.environ.get("ZHQA_FUZZ_RANDOM") != "1"
API_KEY = "fuzz-key-密钥"
_WORKDIR = Path(tempfile.mkdtemp(prefix="zhqa-fuzz-"))
# Small limits, so the fuzzer can reach them cheaply.
_LIMITS = {"max_upload_bytes": 20_000, "max_body_bytes": 40_000}

OPEN_APP = create_app(make_settings(_WORKDIR / "open", **_LIMITS))
open_schema = schemathesis.openapi.from_dict(OPEN_APP.openapi())
open_schema.app = OPEN_APP

KEYED_APP = create_app(make_settings(_WORKDIR / "keyed", api_key=API_KEY, **_LIMITS))
keyed_schema = schemathesis.openapi.from_dict(KEYED_APP.openapi())
keyed_schema.app = KEYED_APP

FUZZ_SETTINGS = hypothesis_settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=DERANDOMIZE, database=None,
                                    suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module", autouse=True)
def _index_copies(base_index: Path):
    for name in ("open", "keyed"):
        shutil.copytree(base_index, _WORKDIR / name)
    yield
    shutil.rmtree(_WORKDIR, ignore_errors=True)


# Field errors that come from the service's own rules (custom validators), not from a type or shape mismatch.
_DOMAIN_ERROR_TYPES = {"value_error"}


def _check_refusal(case, response) -> None:
    """A 4xx for a schema-valid request must come from a domain rule, with a message; any 4xx needs a message."""
    if not 400 <= response.status_code < 500:
        return
    body = response.json()
    assert isinstance(body.get("detail"), str) and body["detail"] and body.get("type"), response.text
    positive = case.meta is not None and case.meta.generation.mode.is_positive
    if not positive or response.status_code in (401, 403, 404, 409):
        return
    assert response.status_code in (413, 415, 422), f"schema-valid request refused: {response.text}"
    field_errors = body.get("errors") or []
    wrong_shape = [e for e in field_errors if e.get("type") not in _DOMAIN_ERROR_TYPES]
    assert not wrong_shape, f"schema-valid request failed request validation (schema and models disagree): " \
                            f"{response.text}"


def _run(case, headers=None) -> None:
    response = case.call_and_validate(headers=headers, excluded_checks=[positive_data_acceptance])
    assert response.status_code < 500, response.text
    _check_refusal(case, response)


@open_schema.parametrize()
@FUZZ_SETTINGS
def test_open_api_conforms_to_its_schema(case):
    _run(case)


@keyed_schema.parametrize()
@FUZZ_SETTINGS
def test_keyed_api_conforms_to_its_schema(case):
    # The key goes in as a header (latin-1 on the wire: the UTF-8 bytes of the key, read back as latin-1).
    key = API_KEY.encode("utf-8").decode("latin-1")
    _run(case, headers={"Authorization": f"Bearer {key}"})
