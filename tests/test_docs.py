"""The documentation: the README stays short and links every page of docs/, every relative link of README.md and
docs/*.md leads to a file (and heading) that exists, and docs/extending.md works as written: its files created and
its shell commands run, exactly as printed, in an empty folder."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from conftest import REPO

README = REPO / "README.md"
DOCS = REPO / "docs"
PAGES = sorted(DOCS.glob("*.md"))
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _prose(text: str) -> str:
    """The text without its fenced code blocks and inline code (which may hold brackets that are not links)."""
    return re.sub(r"`[^`\n]*`", "", FENCE.sub("", text))


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    return "".join(c for c in heading.strip().lower() if c.isalnum() or c in "-_ ").replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    """The anchors a page defines: the slug of every heading, and every ``<a id="...">``."""
    text = FENCE.sub("", page.read_text())
    return set(re.findall(r'<a id="([^"]+)"', text)) | {_slug(h) for h in re.findall(r"^#+ (.+)$", text, re.M)}


def _broken_links(page: Path) -> list[str]:
    broken = []
    for target in LINK.findall(_prose(page.read_text())):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto:
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(f"{page.name}: {target} (no such file)")
        elif anchor and file.suffix == ".md" and anchor not in _anchors(file):
            broken.append(f"{page.name}: {target} (no such heading)")
    return broken


def test_the_readme_is_at_most_300_lines() -> None:
    assert len(README.read_text().splitlines()) <= 300


def test_every_docs_page_is_linked_from_the_readme() -> None:
    linked = {(REPO / t.partition("#")[0]).resolve() for t in LINK.findall(_prose(README.read_text()))}
    assert len(PAGES) >= 7 and [p.name for p in PAGES if p.resolve() not in linked] == []


def test_every_relative_link_leads_to_an_existing_file_and_heading() -> None:
    assert [b for page in [README, *PAGES] for b in _broken_links(page)] == []


def test_the_link_check_finds_a_missing_file_and_a_missing_heading(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Other page\n\n## `result.json`: its keys\n")
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n\n[fine](other.md#resultjson-its-keys) [here](#page) [web](https://example.org/x)\n"
        "[gone](missing.md) [no heading](other.md#nothing) `[not a link](missing.md)`\n"
        "```\n[in code](missing.md)\n```\n"
    )
    assert _broken_links(page) == ["page.md: missing.md (no such file)", "page.md: other.md#nothing (no such heading)"]


def test_the_extending_guide_works_as_written(tmp_path: Path) -> None:
    """Every fenced block of docs/extending.md in order: a Python or YAML block is a file the guide has the user
    create (its first line, a comment, names it), a bash block is run as printed by bash in that folder, with this
    environment's interpreter first on PATH (so its ``python`` is the one running these tests) and this checkout's
    rethink on PYTHONPATH (the guide's commands add the user's folder in front of it)."""
    interpreter = Path(sys.executable).parent / "python"
    assert interpreter.is_file(), f"{interpreter} missing: run the tests with the project's virtual environment"
    env = {k: v for k, v in os.environ.items() if k != "RETHINK_ROOT"}
    env.update(PATH=f"{interpreter.parent}{os.pathsep}{env['PATH']}", PYTHONPATH=str(REPO), WANDB_MODE="offline")
    written, commands = [], []
    for language, body in FENCE.findall((DOCS / "extending.md").read_text()):
        if language in ("python", "yaml"):
            name = re.fullmatch(r"# (\S+)", body.splitlines()[0])
            assert name, f"a {language} block of docs/extending.md does not name its file on its first line"
            assert (tmp_path / name[1]).parent.is_dir(), f"{name[1]}: the guide has not created its folder yet"
            (tmp_path / name[1]).write_text(body)
            written.append(name[1])
        elif language == "bash":
            proc = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", body], cwd=tmp_path, env=env, capture_output=True, text=True,
                timeout=600,
            )  # fmt: skip
            assert proc.returncode == 0, f"{body}\nexited {proc.returncode}:\n{proc.stderr[-3000:]}"
            commands.append(body)
    assert written == ["mypkg/pruners.py", "mypkg/conf/pruner/every_other.yaml", "mypkg/kinds.py"]
    assert [c for c in commands if "python -m rethink.main" in c and "pruner=every_other" in c]
    [result_file] = (tmp_path / "outputs").glob("*/*_digits_vgg16_finetune/result.json")
    result = json.loads(result_file.read_text())
    assert result["config"]["pruner"]["_target_"] == "mypkg.pruners.EveryOther"
    pruning = result["pruning"]
    assert pruning["pruner"] == "every_other" and pruning["requested"] == {"offset": 1}
    widths = pruning["widths"]
    assert widths["after"] == {name: width // 2 for name, width in widths["before"].items()}  # channels 1, 3, ...
    keep = json.loads((tmp_path / result["stages"][1]["path"] / "keep.json").read_text())
    assert all(channels == list(range(1, len(channels) * 2, 2)) for channels in keep.values())
    assert [(s["stage"], s["status"]) for s in result["stages"]] == [
        ("pretrain", "computed"), ("prune", "computed"), ("retrain", "computed"),
    ]  # fmt: skip
    swept = {
        r["cell"]["schedule"]: r
        for r in map(json.loads, map(Path.read_text, (tmp_path / "sweep").rglob("result.json")))
    }
    assert [s["status"] for s in swept["scratch_b"]["stages"]] == ["reused", "reused", "computed"]
    assert swept["scratch_half"]["cell"]["dataset"] == "blobs16" and swept["scratch_half"]["epochs"] == 2
    report = (tmp_path / "report" / "report.md").read_text()
    assert (
        "| Scratch-B | Scratch-half |" in report
        and "Data sets: Blobs 16x16 (blobs16). Models: blobnet (a two-conv" in report
    )
