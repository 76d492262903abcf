"""Every setting a deployment can change is documented under its environment name."""

from __future__ import annotations

import pytest
from pydantic import AliasChoices

from core.settings import Settings
from tests.docs.markdown import DOCS

# The configuration table is in operations.md; authentication and rate limits are detailed in security.md.
DOCUMENTED = (DOCS / "operations.md").read_text(encoding="utf-8") + (DOCS / "security.md").read_text(encoding="utf-8")


def _environment_names(field: str) -> list[str]:
    alias = Settings.model_fields[field].validation_alias
    if isinstance(alias, AliasChoices):
        return [str(choice) for choice in alias.choices]
    return [field.upper()]


@pytest.mark.parametrize("field", sorted(Settings.model_fields))
def test_setting_is_documented(field: str) -> None:
    missing = [name for name in _environment_names(field) if f"`{name}`" not in DOCUMENTED]

    assert missing == []
