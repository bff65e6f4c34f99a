"""Schemathesis over /openapi.json against the in-process app (no network): generated requests,
valid and invalid, to every operation; no answer may be a 5xx, and every answer must match its
documented status codes, content type, headers and body schema. Bounded in examples so it adds
well under a minute to the suite."""
from __future__ import annotations

import atexit
import tempfile
from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import checks

from backend.app import create_app
from backend.settings import Settings

CHECKS = [checks.not_a_server_error, checks.status_code_conformance, checks.content_type_conformance,
          checks.response_headers_conformance, checks.response_schema_conformance]
EXAMPLES = 12  # per operation


# Built at import: schemathesis needs the schema to generate the tests (its from_fixture does not
# run on this pytest). No broker listens at BROKER: job creation answers its documented 503.
_DATA = tempfile.TemporaryDirectory(prefix="fuzz-")
atexit.register(_DATA.cleanup)
BROKER = "redis://127.0.0.1:1/0"
APP = create_app(Settings(data_dir=Path(_DATA.name) / "data", redis_url=BROKER,
                          frontend_dir=Path(_DATA.name) / "none", max_file_bytes=1 << 20))
# the event stream of an unfinished job stays open by design (its bounds: test_api_bounds)
schema = schemathesis.openapi.from_asgi("/openapi.json", APP).exclude(path_regex=r"/events$")


# Bodies holding a whole training config take ~2 s per example to generate: fewer of them.
HEAVY = r"^/api/(jobs|config/check)$"


@schema.exclude(path_regex=HEAVY, method="POST").parametrize()
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
def test_no_server_error_and_answers_match_the_schema(case) -> None:  # noqa: ANN001
    case.call_and_validate(checks=CHECKS)


@schema.include(path_regex=HEAVY, method="POST").parametrize()
@settings(max_examples=4, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
def test_config_bodies_get_no_server_error_and_answers_match_the_schema(case) -> None:  # noqa: ANN001
    case.call_and_validate(checks=CHECKS)
