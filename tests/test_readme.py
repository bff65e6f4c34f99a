"""The README's promises that can be checked without a browser: the config table is the schema's,
and the commands it gives exist."""
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
sys.path.insert(0, str(ROOT / "scripts"))

import config_reference  # noqa: E402


def test_config_reference_matches_the_schema():
    assert config_reference.with_reference(README) == README, \
        "run: python scripts/config_reference.py --update-readme"


def test_every_config_key_of_every_kind_is_documented_with_a_meaning():
    from ddpm.config import CONFIG_KINDS

    assert set(CONFIG_KINDS) >= {"train", "finetune"}
    for kind in CONFIG_KINDS:
        start, end = config_reference.markers(kind)
        table = README.split(start, 1)[1].split(end, 1)[0]
        for key, _default, meaning in config_reference.rows(kind):
            assert meaning, f"{kind}: {key} has no meaning in the reference"
            assert f"| `{key}` |" in table, f"{kind}: {key} is missing from its README table"


def test_make_targets_the_readme_names_exist():
    makefile = (ROOT / "Makefile").read_text()
    for target in set(re.findall(r"\bmake ([a-z][a-z-]+)", README)):
        assert re.search(rf"^{target}:", makefile, re.M), target


def test_configs_the_readme_names_exist_and_cli_subcommands_answer():
    for path in set(re.findall(r"configs/[a-z0-9_/]+\.json", README)):
        assert (ROOT / path).is_file(), path
    for sub in ("train", "sample", "inspect", "export", "kernels", "finetune", "evaluate", "predict", "study"):
        assert f"ddpm {sub}" in README
        out = subprocess.run([sys.executable, "-m", "ddpm", sub, "--help"], cwd=ROOT,
                             capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
