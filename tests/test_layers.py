"""Imports point down the layers: pipelines -> training -> storage/extractors -> errors/resources.

Also: code imports the namespace (``videxperts.training``), never the bare folder names that an
installed copy does not provide, and the harness core never imports a task's package.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FOLDERS = ("cluster", "extractors", "pipelines", "storage", "training", "videxperts")
# what each layer may import from the project (besides itself)
ALLOWED = {
    "errors": set(),
    "resources": set(),
    "storage": {"errors", "resources"},
    "extractors": {"errors", "resources"},
    "cluster": {"errors", "resources"},
    "training": {"errors", "resources", "storage"},
    "pipelines": {"errors", "resources", "storage", "extractors", "cluster", "training"},
}
TASK_PACKAGES = ("retrieval", "captioning", "matching")


def _layer(path: Path) -> str:
    rel = path.relative_to(REPO)
    if rel.parts[0] == "videxperts":
        return rel.stem if rel.stem in ("errors", "resources") else "face"
    return rel.parts[0]


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append(node.module)
    return out


def _sources() -> list[Path]:
    return sorted(p for f in FOLDERS for p in (REPO / f).rglob("*.py"))


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(REPO)))
def test_imports_point_down(path: Path) -> None:
    layer = _layer(path)
    for name in _imports(path):
        head = name.split(".")[0]
        assert head not in FOLDERS[:-1], f"{name}: import through the namespace (videxperts.{name})"
        if head != "videxperts" or layer == "face":
            continue
        target = name.split(".")[1] if "." in name else "face"
        assert target != "face", f"{name}: the package face is for users, not for the layers below it"
        if target != layer:
            assert target in ALLOWED[layer], f"{layer} imports {name}: imports must point down the layers"


def test_harness_core_knows_no_task() -> None:
    """training/*.py (runner, checkpoint, tracking, ...) never imports a task package; tasks are
    reached through the task registry by name."""
    for path in sorted((REPO / "training").glob("*.py")):
        for name in _imports(path):
            assert not any(name.startswith(f"videxperts.training.{t}") for t in TASK_PACKAGES), (path.name, name)
