"""The documentation matches the code: every setting is in config.example.toml."""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import BaseModel

from woo2d365.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
# settings whose value is itself a TOML table
LEAF_TABLES = {"orders.tax_codes", "shipments.carriers"}


def _keys(model: type[BaseModel], prefix: str = "") -> set[str]:
    keys: set[str] = set()
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys |= _keys(annotation, f"{prefix}{name}.")
        else:
            keys.add(prefix + name)
    return keys


def _toml_keys(data: dict, prefix: str = "") -> set[str]:
    keys: set[str] = set()
    for name, value in data.items():
        if isinstance(value, dict) and prefix + name not in LEAF_TABLES:
            keys |= _toml_keys(value, f"{prefix}{name}.")
        else:
            keys.add(prefix + name)
    return keys


def test_config_example_documents_every_setting_and_is_valid() -> None:
    text = (ROOT / "config.example.toml").read_text(encoding="utf-8")
    data = tomllib.loads(text)
    Settings(**data)
    assert _toml_keys(data) == _keys(Settings)


def test_every_key_in_config_example_has_a_comment() -> None:
    lines = (ROOT / "config.example.toml").read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        if "=" in line and not line.lstrip().startswith("#"):
            before = lines[i - 1].strip()
            grouped = before and not before.startswith("[") and "=" in before
            assert before.startswith("#") or "#" in line or grouped, f"undocumented: {line}"


def test_readme_shows_the_two_set_up_commands() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "woo2d365 demo" in readme
    assert "bash tests/run" in readme
    assert "exec bash tests/run" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")
