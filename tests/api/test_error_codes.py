"""Every error code the server can send is in the one table of codes (agent_sessions_client.codes), with the
status the server answers it with: the client then knows it, and the registry answers by it."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from agent_sessions_client.codes import ERROR_CODES
from api.errors import CODE_BY_STATUS, domain_error
from core import errors

ROOT = Path(__file__).resolve().parents[2]
SERVER = ("api", "core", "worker")


def domain_errors() -> list[type[errors.DomainError]]:
    found, pending = [], [errors.DomainError]
    while pending:
        kind = pending.pop()
        found.append(kind)
        pending.extend(kind.__subclasses__())
    return found


def raised(kind: type[errors.DomainError]) -> errors.DomainError:
    return kind("it went wrong", retry_after=1) if issubclass(kind, errors.RateLimited) else kind("it went wrong")


@pytest.mark.parametrize("kind", domain_errors(), ids=lambda kind: kind.__name__)
def test_each_domain_error_is_answered_with_the_status_of_its_code_in_the_table(kind: type[errors.DomainError]) -> None:
    response = domain_error(None, raised(kind))  # type: ignore[arg-type]  # the handler does not read the request

    assert kind.code in ERROR_CODES
    assert response.status_code == ERROR_CODES[kind.code].status
    assert orjson.loads(response.render(response.content, "application/json"))["error"]["code"] == kind.code


def test_each_code_the_registry_gives_a_status_is_in_the_table_with_that_status() -> None:
    assert {code: ERROR_CODES[code].status for code in CODE_BY_STATUS.values() if code in ERROR_CODES} == \
        {code: status for status, code in CODE_BY_STATUS.items()}


# Written codes: where a string constant is an error code, by the name it is given in the source.
def _parameter_positions(trees: list[ast.Module]) -> dict[str, dict[str, int]]:
    """For each function with a `code` parameter, the call position of `code` (and `status`, if any)."""
    positions: dict[str, dict[str, int]] = {}
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                names = [arg.arg for arg in node.args.args]
                if names[:1] in (["self"], ["cls"]):
                    names = names[1:]
                if "code" in names:
                    positions[node.name] = {name: names.index(name) for name in ("code", "status") if name in names}
    return positions


def _is_code_name(node: ast.expr) -> bool:
    """`code`, `x.code`, or a constant named like `SUPERSEDED_CODE`."""
    return (isinstance(node, ast.Name) and (node.id == "code" or node.id.endswith("_CODE"))) or (
        isinstance(node, ast.Attribute) and node.attr == "code")


def _string(node: ast.expr | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _integer(node: ast.expr | None) -> int | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, int) else None


def written_codes(tree: ast.Module, positions: dict[str, dict[str, int]]) -> Iterator[tuple[str, int | None]]:
    """(code, the status it is sent with when the source says so) for each error code written in `tree`."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
            for keyword in node.keywords:
                if keyword.arg == "code" and (code := _string(keyword.value)):
                    yield code, None
            if name == "get" and len(node.args) == 2 and _string(node.args[0]) == "code" and \
                    (code := _string(node.args[1])):
                yield code, None
            where = positions.get(name, {})
            if "code" in where and len(node.args) > where["code"] and (code := _string(node.args[where["code"]])):
                status = _integer(node.args[where["status"]]) if "status" in where else None
                yield code, status
        elif isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if key is not None and _string(key) == "code" and (code := _string(value)):
                    yield code, None
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if _is_code_name(target) and (code := _string(node.value)):
                    yield code, None
                elif isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple):
                    for element, value in zip(target.elts, node.value.elts, strict=False):
                        if _is_code_name(element) and (code := _string(value)):
                            yield code, None
        elif isinstance(node, ast.Compare) and _is_code_name(node.left):
            for comparator in node.comparators:
                if code := _string(comparator):
                    yield code, None
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            arguments = [*node.args.posonlyargs, *node.args.args]
            defaults = [*[None] * (len(arguments) - len(node.args.defaults)), *node.args.defaults]
            pairs = [*zip(arguments, defaults, strict=True), *zip(node.args.kwonlyargs, node.args.kw_defaults,
                                                                   strict=True)]
            for argument, default in pairs:
                if argument.arg == "code" and (code := _string(default)):
                    yield code, None


def server_codes() -> dict[str, set[int | None]]:
    paths = [path for package in SERVER for path in sorted((ROOT / package).rglob("*.py"))]
    trees = [ast.parse(path.read_text(), filename=str(path)) for path in paths]
    positions = _parameter_positions(trees)
    codes: dict[str, set[int | None]] = {}
    for tree in trees:
        for code, status in written_codes(tree, positions):
            codes.setdefault(code, set()).add(status)
    return codes


def test_every_code_written_in_the_server_is_in_the_table_with_the_status_it_is_sent_with() -> None:
    codes = server_codes()

    assert {"SESSION_NOT_FOUND", "AGENT_FAILED", "MESSAGE_SUPERSEDED", "REPLY_TIMEOUT", "SUPERSEDED",
            "AGENT_CIRCUIT_OPEN", "INVALID_JSON"} <= set(codes)  # the scan reaches every kind of place
    assert sorted(set(codes) - set(ERROR_CODES)) == []
    assert {code: sorted(statuses - {None}) for code, statuses in codes.items() if statuses - {None}} == \
        {code: [ERROR_CODES[code].status] for code, statuses in codes.items() if statuses - {None}}
