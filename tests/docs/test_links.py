"""The links a newcomer follows between the README, CONTRIBUTING and docs/ reach a file, and a heading in it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.docs.markdown import DOCS, README, ROOT, anchors, links, pages, prose_lines, slug

PAGES = pages()


def _name(path: Path) -> str:
    return str(path.relative_to(ROOT))


@pytest.mark.parametrize("page", PAGES, ids=_name)
def test_relative_links_reach_an_existing_file(page: Path) -> None:
    broken = [str(link) for link in links(page) if not link.external and not link.resolved()[0].exists()]

    assert broken == []


@pytest.mark.parametrize("page", PAGES, ids=_name)
def test_anchors_name_a_heading_of_the_linked_page(page: Path) -> None:
    broken = []
    for link in links(page):
        target, anchor = link.resolved()
        if link.external or not anchor or not target.exists():
            continue
        if target.suffix != ".md" or anchor not in anchors(target):
            broken.append(str(link))

    assert broken == []


def test_readme_links_every_docs_page() -> None:
    linked = {link.resolved()[0] for link in links(README) if not link.external}

    assert [_name(page) for page in sorted(DOCS.glob("*.md")) if page.resolve() not in linked] == []


@pytest.mark.parametrize("page", [page for page in PAGES if page != README], ids=_name)
def test_page_opens_with_a_title_and_a_summary(page: Path) -> None:
    lines = [line for line in prose_lines(page) if line.strip()]

    assert lines[0].startswith("# ")
    assert not lines[1].startswith(("#", "-", "|", "!", ">")), "the title is followed by a summary paragraph"


def test_slug_follows_github() -> None:
    assert slug("Deploying: Procfile and compose") == "deploying-procfile-and-compose"
    assert slug("socket.io") == "socketio"
    assert slug("What `make test` needs") == "what-make-test-needs"
    assert slug("Why three goals are out of reach here (measured)") == "why-three-goals-are-out-of-reach-here-measured"
