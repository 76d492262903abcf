"""schemathesis against the API's own OpenAPI document, on a real API process with authentication on.

Every operation is exercised with generated valid and invalid requests (examples, coverage, fuzzing and
stateful phases, a bounded number of examples each): no answer may be a 5xx, use an undocumented status
or break its documented schema, and every operation that needs credentials must refuse requests without.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.databases import scratch_postgres
from tests.support.processes import Stack, stack_env
from tests.support.tokens import AUTH_ENV, SERVER_KEY

CHECKS = ("not_a_server_error", "status_code_conformance", "content_type_conformance",
          "response_schema_conformance", "ignored_auth")
MAX_EXAMPLES = 10


def schemathesis_command(base_url: str) -> list[str]:
    return [str(Path(sys.executable).with_name("schemathesis")), "run", f"{base_url}/schema/openapi.json",
            "--header", f"X-API-KEY: {SERVER_KEY}", "--checks", ",".join(CHECKS),
            "--max-examples", str(MAX_EXAMPLES), "--workers", "1"]


@pytest.fixture(scope="module")
def fuzzed_stack(redis_prefix: str, run_id: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Its own database: with the server key, the fuzzer deletes agents (the default one too) and purges
    sessions, which must not reach other tests' data. Authentication on, production settings, no worker."""
    with scratch_postgres(f"as_fuzz_{run_id}") as database_url:
        env = stack_env(database_url, f"{redis_prefix}fuzz:", f"q-{run_id}-fuzz", ENVIRONMENT="production",
                        RATE_LIMIT_ENABLED="false", REPLY_WAIT_SECONDS="0.5", **AUTH_ENV)
        with Stack(env=env, log_dir=Path(tmp_path_factory.mktemp("fuzz-stack"))).running() as stack:
            yield stack


def test_api_conforms_to_its_openapi_document(fuzzed_stack: Stack, tmp_path: Path) -> None:
    # In a scratch directory: schemathesis keeps a cache of what it found in its working directory.
    run = subprocess.run(schemathesis_command(fuzzed_stack.base_url), capture_output=True, text=True, timeout=240,
                         cwd=tmp_path)

    output = run.stdout + run.stderr
    counts = re.search(r"(\d+) generated, (.*)", output)
    print(counts.group(0) if counts else output[-2000:])  # the counts docs/security.md quotes
    assert run.returncode == 0, output[-6000:]
    assert counts is not None and int(counts.group(1)) >= 500
