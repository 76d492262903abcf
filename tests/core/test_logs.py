"""Log format selection and request id acceptance (pure functions)."""

from __future__ import annotations

from core.logs import accepted_request_id, log_format
from core.settings import Settings


def test_dev_environment_logs_for_humans_and_production_logs_json() -> None:
    assert log_format(Settings(environment="dev")) == "console"
    assert log_format(Settings(environment="production")) == "json"
    assert log_format(Settings(environment="dev", log_format="json")) == "json"


def test_request_id_from_the_caller_is_kept_only_when_it_is_a_sane_token() -> None:
    assert accepted_request_id("abc-123.X") == "abc-123.X"
    assert accepted_request_id("x" * 129) != "x" * 129
    assert accepted_request_id("evil\nline") != "evil\nline"
    assert len(accepted_request_id(None)) == 32
