"""Running from the root of a source checkout.

``python -m compactor.bench`` puts the current directory first on ``sys.path``, so in a clone's root the source
folder ``compactor/`` (which holds no built ``_native`` module) shadows the package that ``pip install .``
installed. :func:`use_installed_copy` detects that case and loads the installed package in place of the source
folder when both were built from the same sources; when they differ it fails loudly, naming which is which.
Pure Python, standard library only: it runs before anything else of the package is imported.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Dict, List, Optional, Set

# Compared between the source folder and an installed copy: every Python file of the package, and the native
# core's sources against the copy the installed package carries (device/runner_src: what its binary was built from).
_COMPARED = ("*.py", "*.pyi")
_NATIVE = ("native/include", "native/core", "native/runner")


def _native_built_in(folder: Path) -> bool:
    return any(folder.glob("_native.*.so")) or any(folder.glob("_native.so"))


def installed_copies(source: Path) -> List[Path]:
    """Package folders named like ``source`` on sys.path that hold a built native module, ``source`` excluded."""
    found = []
    for entry in sys.path:
        try:
            cand = (Path(entry or ".") / source.name).resolve()
        except OSError:
            continue
        if cand != source and cand not in found and (cand / "__init__.py").is_file() and _native_built_in(cand):
            found.append(cand)
    return found


def differing_files(source: Path, installed: Path) -> List[str]:
    """Relative paths of the package's Python files that differ between the two folders (or exist in one only)."""
    def files(root: Path) -> Set[str]:
        return {p.relative_to(root).as_posix() for pat in _COMPARED for p in root.rglob(pat)
                if "__pycache__" not in p.parts}

    a, b = files(source), files(installed)
    diff = sorted(a ^ b)
    diff += sorted(f for f in a & b if (source / f).read_bytes() != (installed / f).read_bytes())
    carried = installed / "device" / "runner_src"
    if carried.is_dir() and (source.parent / "native").is_dir():
        def native(root: Path) -> Dict[str, Path]:
            return {p.relative_to(root).as_posix(): p for sub in _NATIVE for p in (root / sub).rglob("*")
                    if p.is_file()}

        x, y = native(source.parent), native(carried)
        diff += sorted(f for f in set(x) ^ set(y))
        diff += sorted(f for f in set(x) & set(y) if x[f].read_bytes() != y[f].read_bytes())
    return diff


class SourceTreeShadowsInstall(ImportError):
    """The source folder of a checkout was imported instead of the installed package, and they differ."""


def use_installed_copy(name: str, init_file: str) -> Optional[object]:
    """Called first by the package's ``__init__``. Returns None when the native module can be imported from where
    the package was found (an installed package, an editable install, or a built tree). Otherwise loads the
    installed copy under ``name`` in place of the source folder and returns it, or raises
    :class:`SourceTreeShadowsInstall` naming both folders and the remedy."""
    source = Path(init_file).resolve().parent
    if importlib.util.find_spec(f"{name}._native") is not None:
        return None
    copies = installed_copies(source)
    if not copies:
        raise SourceTreeShadowsInstall(
            f"{name}: {source} is a source folder without the built native module ({name}._native), and no "
            f"installed {name} was found on sys.path. Install it with `pip install .` from the checkout's root "
            f"(or see the README's development install).")
    installed = copies[0]
    diff = differing_files(source, installed)
    if diff:
        shown = ", ".join(diff[:8]) + (f" and {len(diff) - 8} more" if len(diff) > 8 else "")
        raise SourceTreeShadowsInstall(
            f"{name}: the current directory's source folder {source} shadows the installed package {installed}, "
            f"and they differ ({shown}): the installed build is not this source. Reinstall with `pip install .` "
            f"from the checkout's root, or run from another directory to use the installed package as it is.")
    spec = importlib.util.spec_from_file_location(name, installed / "__init__.py",
                                                  submodule_search_locations=[str(installed)])
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module
