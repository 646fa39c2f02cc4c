"""Reliability tests (fuzzing, bad inputs, load, faults, security, observability) on the embedded FAISS index.

Fixtures come from `tests/fixtures.py`; helpers such as `start_serve` from `tests/support.py`.
"""

from tests.fixtures import *  # this folder's own instances of the shared fixtures
