"""docs/ARCHITECTURE.md's package map names every module of the package, so it cannot drift silently."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "daemon" / "latentd"


def _layout_block() -> str:
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    section = text.split("## Package layout", 1)[1]
    return section.split("```", 2)[1]


def _mapped() -> set[str]:
    """Paths the map names, e.g. ``engine/ring.py``, read from its indentation."""
    paths: set[str] = set()
    folders: list[str] = []
    for line in _layout_block().splitlines():
        match = re.match(r"^( *)(\S+)", line)
        if not match or match.group(2) == "daemon/latentd/":
            continue
        depth = len(match.group(1)) // 2 - 1
        name = match.group(2)
        folders = folders[:depth]
        if name.endswith("/"):
            folders.append(name.rstrip("/"))
        elif name.endswith(".py"):
            paths.add("/".join([*folders, name]))
    return paths


def test_every_module_is_in_the_package_map() -> None:
    modules = {str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")}
    modules -= {m for m in modules if m.endswith("__init__.py") and m.count("/") > 0}
    missing = sorted(modules - _mapped() - {"__init__.py"})
    assert not missing, f"docs/ARCHITECTURE.md's package layout does not name: {', '.join(missing)}"


def test_the_map_names_no_module_that_is_gone() -> None:
    stale = sorted(p for p in _mapped() if not (PACKAGE / p).is_file())
    assert not stale, f"docs/ARCHITECTURE.md's package layout names missing files: {', '.join(stale)}"
