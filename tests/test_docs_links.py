"""Every reference in the words points at something real (issue 13, item 5): relative markdown
links, `docs/...` paths and `*.md` names in README, docs/ and the package's docstrings and
comments resolve to files of the repository, and the design document is `docs/design.md`."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Files the toolkit WRITES (named in its words, not part of the repository).
GENERATED = {"report.md"}
LINK = re.compile(r"\]\(([^)\s]+)\)")                      # [text](target)
PATH = re.compile(r"(?<![\w/.:-])((?:docs|notebooks|benchmarks|tests|efl_toolkit|data_scripts)"
                  r"/[\w./-]*\w|[\w./-]*\w\.md)\b")


def _tracked(*patterns: str) -> list[Path]:
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", *patterns],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [ROOT / line for line in out.splitlines() if (ROOT / line).is_file()]


def _words() -> list[Path]:
    return [*_tracked("README.md", "docs/*.md", "notebooks/README.md"),
            *_tracked("efl_toolkit/*.py", "efl_toolkit/**/*.py")]


def _resolves(target: str, source: Path) -> bool:
    """A file or folder beside ``source`` or under the root (a module path may omit ``.py``;
    a pattern such as ``notebooks/scripts/NN_name.py`` needs its folder)."""
    target = target.split("#", 1)[0].rstrip(".")
    if not target or "*" in target or "<" in target:
        return True
    if re.search(r"(^|/)[A-Z]{2,}_\w*\.\w+$", target):
        target = str(Path(target).parent)
    return any(c.exists() for base in (source.parent, ROOT)
               for c in (base / target, base / f"{target}.py"))


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def broken_references(paths: list[Path]) -> list[str]:
    """``file:line: target`` for every link or path that names no real file or folder."""
    broken = []
    for path in paths:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            targets = PATH.findall(line)
            if path.suffix == ".md":                 # in code, `f(x)[i](y)` is no link
                targets += [t for t in LINK.findall(line) if not re.match(r"[a-z]+:|#", t)]
            for target in dict.fromkeys(targets):
                if Path(target.split("#")[0]).name in GENERATED:
                    continue
                if not _resolves(target, path):
                    broken.append(f"{_shown(path)}:{number}: {target}")
    return broken


def test_every_reference_in_readme_docs_and_docstrings_resolves():
    words = _words()
    assert len(words) > 50 and ROOT / "README.md" in words
    assert broken_references(words) == []


def test_the_checker_finds_a_broken_link(tmp_path):
    page = ROOT / "docs" / "design.md"
    fake = tmp_path / "page.md"
    fake.write_text(page.read_text() + "\nSee [the notes](docs/notes.md) and docs/gone.py.\n")
    assert [b.split(": ", 1)[1] for b in broken_references([fake])] == ["docs/notes.md",
                                                                        "docs/gone.py"]


def test_the_design_document_is_docs_design_md():
    # built, so this file does not name them itself
    names = ("DESIGN" + ".md", "FIELD" + "_NOTES", "/work/" + "shared")
    offenders = []
    for path in _tracked():
        if path.suffix in {".png", ".npz", ".sqlite", ".ico", ".woff2"}:
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            if any(name in line for name in names):
                offenders.append(f"{path.relative_to(ROOT)}:{number}")
            for match in re.finditer(r"[\w./-]*design\.md", line, re.IGNORECASE):
                if not match.group(0).endswith("docs/design.md") \
                        and match.group(0) != "design.md":
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {match.group(0)}")
    assert (ROOT / "docs" / "design.md").is_file()
    assert offenders == []
