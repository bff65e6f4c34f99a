"""Generate the frontend's REST types from the backend's OpenAPI description.

    python scripts/api_client.py                 # rewrite frontend/src/api/schema.gen.ts
    python scripts/api_client.py --out FILE      # write elsewhere (the stale-client test does)
    python scripts/api_client.py --spec FILE     # also keep the OpenAPI JSON

The description comes from the app object itself (no server, no Redis, a throw-away data
folder), and openapi-typescript (pinned in frontend/package.json) turns it into TypeScript.
Nothing about the REST types is written by hand on the frontend side.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FRONTEND = REPO / "frontend"
SCHEMA_TS = FRONTEND / "src" / "api" / "schema.gen.ts"
GENERATOR = FRONTEND / "node_modules" / ".bin" / "openapi-typescript"
# --root-types: `components["schemas"]["JobOut"]` is also exported as `JobOut`;
# --enum-values: every enum also as a runtime array (the sampler and status choices);
# --default-non-nullable=false: a request field with a server default may be left out.
GENERATOR_FLAGS = ["--root-types", "--root-types-no-schema-prefix", "--enum-values", "--alphabetize",
                   "--default-non-nullable=false"]

sys.path.insert(0, str(REPO))


def openapi_document() -> dict:
    """The OpenAPI document the API serves at /openapi.json, built without serving anything."""
    from backend.app import create_app
    from backend.settings import Settings

    with tempfile.TemporaryDirectory() as tmp:
        # The document does not depend on these; they only keep the app from touching ./data.
        settings = Settings(data_dir=Path(tmp), api_token=None, redis_url="redis://127.0.0.1:1/0",
                            frontend_dir=Path(tmp) / "no-frontend", database_url=None)
        app = create_app(settings)
        doc = app.openapi()
        app.state.engine.dispose()
    return doc


def ensure_generator() -> Path:
    """The pinned openapi-typescript from frontend/node_modules (npm ci when it is missing)."""
    if not GENERATOR.exists():
        npm = shutil.which("npm")
        if not npm:
            raise SystemExit("api_client: npm (Node.js 20+) is needed to run openapi-typescript")
        subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=FRONTEND, check=True)
    return GENERATOR


def generate(out: Path, spec_out: Path | None = None) -> None:
    """Write the TypeScript types of the current OpenAPI document to ``out``."""
    doc = openapi_document()
    generator = ensure_generator()
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "openapi.json"
        spec.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
        if spec_out is not None:
            shutil.copyfile(spec, spec_out)
        done = subprocess.run([str(generator), str(spec), "--output", str(out), *GENERATOR_FLAGS],
                              cwd=FRONTEND, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"api_client: openapi-typescript failed:\n{done.stdout}{done.stderr}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=SCHEMA_TS, help="the TypeScript file to write")
    parser.add_argument("--spec", type=Path, default=None, help="also write the OpenAPI JSON here")
    args = parser.parse_args(argv)
    generate(args.out.resolve(), args.spec.resolve() if args.spec else None)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
