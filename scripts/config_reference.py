"""Print the config reference (every key, its default and meaning) as one Markdown table per
config kind, from the schema itself (``ddpm.config.fields``), so the README cannot drift from the
schema (tests/test_readme.py checks it).

    python scripts/config_reference.py                  # print every kind's table
    python scripts/config_reference.py --update-readme  # rewrite the README's tables
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ddpm.config import CONFIG_KINDS  # noqa: E402
from ddpm.config.fields import ConfigField, config_fields  # noqa: E402


def _default(field: ConfigField) -> str:
    """The default as Markdown; a key of an optional block is off until the block is given."""
    value = "required" if field.required else f"`{json.dumps(field.default)}`"
    return f"off (block absent; when given: {value})" if field.parent_nullable else value


def rows(kind: str = "train") -> list[tuple[str, str, str]]:
    """(key, default, meaning) of every key of the config kind, in schema order."""
    return [(f.path, _default(f), f.description) for f in config_fields(kind)]


def markdown(kind: str = "train") -> str:
    lines = ["| key | default | meaning |", "| --- | --- | --- |"]
    lines += [f"| `{k}` | {d} | {m} |" for k, d, m in rows(kind)]
    return "\n".join(lines)


def markers(kind: str) -> tuple[str, str]:
    """The README comments around the table of ``kind`` (train's kept their first spelling)."""
    name = "config-reference" if kind == "train" else f"config-reference-{kind}"
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def with_reference(readme: str) -> str:
    """The README text with every kind's table between its markers replaced by the current one."""
    for kind in CONFIG_KINDS:
        start, end = markers(kind)
        head, rest = readme.split(start, 1)
        _, tail = rest.split(end, 1)
        readme = f"{head}{start}\n{markdown(kind)}\n{end}{tail}"
    return readme


if __name__ == "__main__":
    if sys.argv[1:] == ["--update-readme"]:
        path = Path(__file__).resolve().parents[1] / "README.md"
        path.write_text(with_reference(path.read_text()))
    else:
        print("\n\n".join(f"{kind}:\n\n{markdown(kind)}" for kind in CONFIG_KINDS))
