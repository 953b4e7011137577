"""The repository's own text: no file left half-merged."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEXT = {".py", ".md", ".yaml", ".yml", ".toml", ".txt", ".json", ".cfg", ""}


def _text_files():
    for top in ("README.md", "Makefile", "pyproject.toml", "src", "conf", "experiments", "tests",
                ".ci"):  # fmt: skip
        path = ROOT / top
        files = [path] if path.is_file() else sorted(path.rglob("*")) if path.is_dir() else []
        yield from (f for f in files if f.is_file() and f.suffix in TEXT)


def test_no_merge_conflict_markers():
    marked = [
        f"{f.relative_to(ROOT)}:{n}"
        for f in _text_files()
        for n, line in enumerate(f.read_text(errors="replace").splitlines(), 1)
        if line.startswith(("<<<<<<< ", ">>>>>>> ")) or line == "======="
    ]
    assert len(list(_text_files())) > 100
    assert not marked, marked
