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


ENTRY_POINTS = ("liftpose.train", "liftpose.eval", "liftpose.infer", "liftpose.export",
                "liftpose.tables.run", "liftpose.data.cli", "liftpose.bench")  # fmt: skip
LIBRARY = ("data", "models", "modules", "metrics", "system", "utils")


def _imports(tree):
    """Modules imported by a module, outside its ``if __name__ == "__main__":`` block."""
    import ast

    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test):
            node.body = []  # the script block may run an entry point
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            yield node.module
        elif isinstance(node, ast.Import):
            yield from (a.name for a in node.names)


def test_the_library_never_imports_an_entry_point():
    """data -> models -> modules -> entry points: nothing below imports a command."""
    import ast

    found = []
    for package in LIBRARY:
        for f in sorted((ROOT / "src" / "liftpose" / package).rglob("*.py")):
            if f == ROOT / "src" / "liftpose" / "data" / "cli.py":
                continue  # liftpose-data itself
            for name in _imports(ast.parse(f.read_text())):
                if name.startswith(ENTRY_POINTS):
                    found.append(f"{f.relative_to(ROOT)}: {name}")
    assert not found, found


def test_command_help_keeps_its_line_breaks():
    """A backslash at the end of an example line in a docstring must print as one (``\\\\``),
    or the example's two lines run together in ``--help``."""
    from liftpose.data import cli

    assert "data/bandai \\\n        --name bandai" in cli.__doc__
