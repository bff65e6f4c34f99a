"""The frontend's REST types are generated from the API's OpenAPI description; a committed copy
that no longer matches what the backend serves fails here (fix: `make api-client`)."""
import difflib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import api_client  # noqa: E402


def test_generated_client_matches_the_served_openapi(tmp_path: Path):
    fresh = tmp_path / "schema.gen.ts"
    api_client.generate(fresh)
    committed = api_client.SCHEMA_TS.read_text()
    current = fresh.read_text()
    if committed != current:
        diff = "".join(list(difflib.unified_diff(committed.splitlines(True), current.splitlines(True),
                                                 "committed schema.gen.ts", "from /openapi.json"))[:60])
        raise AssertionError("frontend/src/api/schema.gen.ts is stale: run `make api-client`\n" + diff)


def test_the_generated_types_describe_the_served_routes(tmp_path: Path):
    """The check above is only worth something if the file really is the API: every route the
    app serves under /api appears in it, with its response models."""
    doc = api_client.openapi_document()
    ts = api_client.SCHEMA_TS.read_text()
    api_paths = [p for p in doc["paths"] if p.startswith("/api/")]
    assert api_paths
    for path in api_paths:
        assert f'"{path}": {{' in ts, path
    for name in ("JobOut", "DatasetDetail", "SampleOut", "ErrorResponse"):
        assert f"export type {name} = components['schemas']['{name}'];" in ts, name
