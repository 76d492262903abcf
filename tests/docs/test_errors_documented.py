"""Every error code the API can answer is in the errors reference a client developer reads."""

from __future__ import annotations

import pytest

from core import errors
from tests.docs.markdown import DOCS

API_PAGE = (DOCS / "api.md").read_text(encoding="utf-8")


def _domain_error_codes() -> set[str]:
    found, pending = set(), [errors.DomainError]
    while pending:
        error = pending.pop()
        found.add(error.code)
        pending.extend(error.__subclasses__())
    return found


@pytest.mark.parametrize("code", sorted(_domain_error_codes()))
def test_domain_error_code_is_documented(code: str) -> None:
    assert f"`{code}`" in API_PAGE
