"""The documentation stays true: README is a short front door, its links resolve, its names exist.

README.md reads in five minutes and links to the references under ``docs/``; every relative link in
either resolves to a file (and, with ``#anchor``, to a heading in it); every metric README names is
one the exporter serves; and the servers table lists every registered adapter with its counting.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from exporter.exposition.metrics import ALL
from exporter.sources.servers import adapter_kinds

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
README_LINES_LIMIT = 250
LINK = re.compile(r"\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def anchors(path: Path) -> set[str]:
    """GitHub's anchors for the headings of a markdown file."""
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    found = set()
    for heading in re.findall(r"^#+ (.+)$", text, re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        found.add(slug)
    return found


def links(path: Path) -> list[str]:
    return [link for link in LINK.findall(FENCE.sub("", path.read_text(encoding="utf-8"))) if "://" not in link]


def test_readme_is_a_front_door_that_reads_in_five_minutes() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) < README_LINES_LIMIT
    assert lines[3:5] == [
        "make demo   # run the exporter against a simulated 10× H100 node: vLLM, SGLang, a prefill/decode pair;"
        " prints the URL",
        "make test   # every check CI runs: ruff, mypy --strict, and the whole test suite",
    ]
    for page in DOCS:
        if page.name != "runbooks.md":
            assert f"](docs/{page.name})" in README.read_text(encoding="utf-8"), f"README does not link {page.name}"


@pytest.mark.parametrize("page", [README, *DOCS], ids=lambda p: p.name)
def test_every_relative_link_resolves_to_a_file_and_heading(page: Path) -> None:
    for link in links(page):
        target, _, anchor = link.partition("#")
        resolved = (page.parent / target).resolve() if target else page
        assert resolved.exists(), f"{page.name}: {link} does not exist"
        if anchor and resolved.suffix == ".md":
            assert anchor in anchors(resolved), f"{page.name}: {link} names no heading of {resolved.name}"


def test_every_metric_readme_names_is_served() -> None:
    served = {metric.name for metric in ALL}
    named = set(re.findall(r"`(inference_[a-z_]+)", README.read_text(encoding="utf-8")))
    assert named, "README names no metric"
    assert named <= served, sorted(named - served)


def test_the_servers_table_lists_every_adapter_with_its_token_counting() -> None:
    text = (ROOT / "docs" / "servers.md").read_text(encoding="utf-8")
    for kind in adapter_kinds():
        row = re.search(rf"^\| `{re.escape(kind)}` \|(.+)\|$", text, re.M)
        assert row is not None, f"docs/servers.md has no row for kind {kind}"
        counting = row.group(1).split("|")[-1]
        assert "incremental" in counting or "at_completion" in counting, f"{kind}: no counting moment"
