"""The README is a newcomer's first screen; the rest of the documentation
lives in docs/ and benchmarks/README.md, and every link between them works."""

import re
from pathlib import Path

import pytest
from django.conf import settings

ROOT = Path(settings.BASE_DIR)
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
README_MAX_BYTES = 8 * 1024
# What a newcomer reads before scrolling: the summary, prerequisites, the two commands, what next.
FIRST_SCREEN_LINES = 50

LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")  # [text](target)
HEADING = re.compile(r"^#{1,6} (.+)$", flags=re.MULTILINE)
CODE_BLOCK = re.compile(r"^```.*?^```", flags=re.MULTILINE | re.DOTALL)


def relative_links(document: Path) -> list[str]:
    """Links to files of the repository, with their #anchor if any; URLs left out."""
    targets = LINK.findall(document.read_text())
    return [target for target in targets if not re.match(r"^[a-z][a-z0-9+.-]*:", target)]


def anchors(document: Path) -> set[str]:
    """The anchors GitHub gives a document's headings: lowercase, punctuation dropped, spaces as hyphens."""
    headings = HEADING.findall(CODE_BLOCK.sub("", document.read_text()))
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


def first_screen() -> str:
    return "\n".join(README.read_text().splitlines()[:FIRST_SCREEN_LINES])


def test_the_readme_stays_short():
    assert README.stat().st_size < README_MAX_BYTES


@pytest.mark.parametrize("document", [README, *DOCS, ROOT / "benchmarks" / "README.md"], ids=lambda p: p.name)
def test_every_relative_link_points_at_a_file_that_exists(document):
    missing = []
    for target in relative_links(document):
        path, _, anchor = target.partition("#")
        linked = (document.parent / path) if path else document
        if not linked.exists() or (anchor and linked.suffix == ".md" and anchor not in anchors(linked)):
            missing.append(target)
    assert not missing, f"{document.relative_to(ROOT)} links to what does not exist: {missing}"


def test_the_readme_links_every_document_in_docs_and_the_benchmarks():
    linked = {(ROOT / target.partition("#")[0]).resolve() for target in relative_links(README)}
    expected = {path.resolve() for path in DOCS} | {(ROOT / "benchmarks" / "README.md").resolve()}
    assert expected <= linked, sorted(str(path.relative_to(ROOT)) for path in expected - linked)


def test_the_docs_cover_each_reader():
    names = {path.name for path in DOCS}
    assert {"architecture.md", "api.md", "operators.md", "deployment.md", "stripe.md"} <= names


def test_the_first_screen_names_node_and_npm_before_the_commands():
    screen = first_screen()
    assert "```sh\nmake run" in screen
    commands_at = screen.index("```sh\nmake run")
    assert "Node.js" in screen[:commands_at]
    assert "npm" in screen[:commands_at]


def test_the_first_screen_says_what_make_test_needs():
    screen = first_screen()
    assert "Python 3.11" in screen
    assert "PostgreSQL" in screen
    assert "Redis" in screen


@pytest.mark.parametrize(
    "next_step",
    ["http://127.0.0.1:8000/", "/accounts/signup/", "console", "createsuperuser", "/admin/", "/api/docs/"],
)
def test_the_first_screen_says_what_to_do_next(next_step):
    assert next_step in first_screen()
