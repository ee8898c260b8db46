"""The MOVE-relevant facts of a kernel release: which known UFFDIO_MOVE bugs it may have, whether ART would use
MOVE on it, and the advice.

The bugs are one table, ``compactor/data/move_kernel_bugs.json`` (each entry with its source; its ``_format``
states the range semantics). A release is judged by its version; the running kernel is also probed where a safe
probe exists (today: whether MOVE keeps a source page's userfaultfd write protection, on two pages of this
process). :func:`evaluate` gives the facts (``python -m compactor info`` and every bench report show them);
:func:`warn_for_strategy` warns once per process, with :class:`~compactor.errors.KernelMoveWarning`, when a MOVE
strategy runs on a kernel that may have one of the bugs.
"""

from __future__ import annotations

import functools
import json
import platform
import re
import warnings
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .errors import KernelMoveWarning
from .swap import PAGEMAP_PRESENT, pagemap

Version = Tuple[int, int, int]
BUGS_FILE = Path(__file__).with_name("data") / "move_kernel_bugs.json"
# ART's MoveIoctlKernelCheck (runtime/gc/collector/mark_compact.cc): MOVE only on 6.12.20+, 6.13.8+ or 6.14+.
ART_MOVE_MINIMUMS: Tuple[Version, ...] = ((6, 12, 20), (6, 13, 8), (6, 14, 0))
MOVE_SINCE: Version = (6, 8, 0)  # UFFDIO_MOVE entered mainline in 6.8
_RELEASES = [f"{a}.{b}.{c}+" if c else f"{a}.{b}+" for a, b, c in ART_MOVE_MINIMUMS]
ART_MOVE_RELEASES = ", ".join(_RELEASES[:-1]) + " or " + _RELEASES[-1]  # "6.12.20+, 6.13.8+ or 6.14+"
MOVE_STRATEGIES = ("move", "move-alloc", "hybrid")
_SERIES_END = 1 << 30  # a last bound "X.Y" covers every X.Y.z
_PM_UFFD_WP = 1 << 57  # /proc/PID/pagemap: the PTE is uffd write-protected
# A table entry's fields in a report.
_REPORTED = ("id", "title", "affected", "fixed_in", "affects_collections", "what", "source", "note")


def parse_release(release: str) -> Version:
    """(major, minor, patch) from a kernel release as ``uname -r`` prints it ("6.18.44-fc-v1300",
    "6.12.19-android16-5-g1234", "6.1.0-18-amd64", "6.14"); a missing patch level reads as 0. Raises
    ValueError naming the string when it does not start with MAJOR.MINOR."""
    m = re.match(r"\s*(\d+)\.(\d+)(?:\.(\d+))?", release)
    if m is None:
        raise ValueError(f"cannot read a kernel version from release {release!r}: expected MAJOR.MINOR[.PATCH] "
                         "first, as `uname -r` prints it (e.g. 6.12.20-android16-...)")
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


def version_str(v: Version) -> str:
    return f"{v[0]}.{v[1]}.{v[2]}"


def _bound(text: str, last: bool) -> Version:
    """A range bound of the table: "X.Y.Z" is that release; "X.Y" is X.Y.0 as a first bound and every X.Y.z
    as a last bound."""
    parts = text.split(".")
    if not 2 <= len(parts) <= 3 or not all(p.isdigit() for p in parts):
        raise ValueError(f"{BUGS_FILE.name}: bad version bound {text!r} (expected X.Y or X.Y.Z)")
    patch = int(parts[2]) if len(parts) == 3 else (_SERIES_END if last else 0)
    return int(parts[0]), int(parts[1]), patch


def in_ranges(version: Version, affected: Sequence[Sequence[Optional[str]]]) -> bool:
    """Whether ``version`` lies in one of the inclusive [first, last] ranges (last None: open-ended)."""
    for first, last in affected:
        if first is None:
            raise ValueError(f"{BUGS_FILE.name}: a range needs a first version, got {[first, last]!r}")
        lo = _bound(first, last=False)
        hi = (_SERIES_END, 0, 0) if last is None else _bound(last, last=True)
        if lo <= version <= hi:
            return True
    return False


def _read_table() -> Tuple[Dict[str, Any], ...]:
    with open(BUGS_FILE, encoding="utf-8") as f:
        return tuple(json.load(f)["bugs"])


# Read when the module is imported, not at the first MOVE collection: a process may drop privileges after
# importing compactor, and the installed package may then be unreadable (a site-packages under /root, mode 700).
_BUGS = _read_table()


def load_bugs() -> Tuple[Dict[str, Any], ...]:
    """The table's entries (id, title, affected, fixed_in, what, source, note, probe), as read at import."""
    return _BUGS


def art_would_use_move(version: Version, move_in_kernel: bool = True) -> bool:
    """ART's MoveIoctlKernelCheck: 6.12.20+ within 6.12, 6.13.8+ within 6.13, or 6.14 and later, and the kernel
    offers UFFDIO_MOVE at all."""
    if not move_in_kernel or version < MOVE_SINCE:
        return False
    for minimum in ART_MOVE_MINIMUMS:
        if version[:2] == minimum[:2]:
            return version >= minimum
    return version >= ART_MOVE_MINIMUMS[-1]


def probe_wp_across_move(user_mode_only: bool = True) -> Tuple[str, str]:
    """Whether UFFDIO_MOVE keeps a write-protected source page's protection at the destination, on this kernel:
    one page written, registered (missing and wp) and write-protected, MOVEd to a registered page; the
    destination's pagemap uffd-wp bit (57) tells. Returns ("dropped" | "preserved" | "unknown", detail); never
    raises. Costs two pages and one throwaway userfaultfd."""
    try:
        from . import uffd

        feats = uffd.probe(user_mode_only=user_mode_only)
        missing = [f for f in ("move", "wp") if f not in feats]
        if missing:
            return "unknown", f"userfaultfd lacks {', '.join(missing)} here"
        ps = uffd.PAGE_SIZE
        with uffd.Userfaultfd(["wp"], user_mode_only=user_mode_only) as u, uffd.Mapping(ps) as src, \
                uffd.Mapping(ps) as dst:
            src[:8] = b"wp-probe"
            u.register(src.address, ps, missing=True, wp=True)
            u.register(dst.address, ps, missing=True, wp=True)
            u.writeprotect(src.address, ps, True)
            before = pagemap(src.address, 1, ps)[0]
            if not (before & PAGEMAP_PRESENT and before & _PM_UFFD_WP):
                return "unknown", "pagemap does not show the source page write-protected (bit 57), so it cannot tell"
            u.move(dst.address, src.address, ps)
            after = pagemap(dst.address, 1, ps)[0]
            if not after & PAGEMAP_PRESENT:
                return "unknown", "the moved page is not present at the destination"
            if after & _PM_UFFD_WP:
                return "preserved", "the moved page is still uffd write-protected (pagemap bit 57 set)"
            return "dropped", "the moved page lost uffd write protection (pagemap bit 57 clear after MOVE)"
    except Exception as e:  # a probe reports, it never raises
        return "unknown", f"{type(e).__name__}: {e}"


PROBES = {"wp_across_move": probe_wp_across_move}


def _bug_applies(bug: Dict[str, Any], version: Optional[Version], probe: Optional[Tuple[str, str]]) -> bool:
    if probe is not None and probe[0] in ("dropped", "preserved"):
        return probe[0] == "dropped"  # the probe's answer overrides the version (a vendor kernel may carry a fix)
    return version is None or in_ranges(version, bug["affected"])


def evaluate(release: Optional[str] = None, *, move: Optional[bool] = None, probe: bool = True,
             user_mode_only: bool = True) -> Dict[str, Any]:
    """The MOVE facts of ``release`` (default: the running kernel, ``platform.release()``):
    ``{"release", "version", "move_in_kernel", "known_bugs": [...], "art_would_use_move", "advice"}``.

    ``known_bugs`` holds the table's entries this kernel may have, each with ``evidence`` ("probed" or "by
    version") and ``probe`` (the probe's result and detail, or None). ``move``: whether the kernel offers
    UFFDIO_MOVE (a probe's answer; default: judged by version, >= 6.8). The running kernel is probed when
    ``release`` is None and ``probe`` is true; a release given explicitly (a device's, a test's) is judged by
    version only. An unreadable release makes every bug possible and ART's answer False."""
    running = release is None
    release = platform.release() if release is None else release
    try:
        version: Optional[Version] = parse_release(release)
    except ValueError:
        version = None
    move_in_kernel = (version is not None and version >= MOVE_SINCE) if move is None else bool(move)
    known: List[Dict[str, Any]] = []
    for bug in load_bugs():
        result = None
        if running and probe and move_in_kernel and bug.get("probe") in PROBES:
            result = PROBES[bug["probe"]](user_mode_only=user_mode_only)
        if not move_in_kernel or not _bug_applies(bug, version, result):
            continue
        probed = result is not None and result[0] != "unknown"
        entry: Dict[str, Any] = {k: bug[k] for k in _REPORTED if k in bug}
        entry.update(evidence="probed" if probed else "by version",
                     probe=None if result is None else {"name": bug["probe"], "result": result[0],
                                                        "detail": result[1]})
        known.append(entry)
    art = version is not None and art_would_use_move(version, move_in_kernel)
    return {"release": release, "version": None if version is None else version_str(version),
            "move_in_kernel": move_in_kernel, "known_bugs": known, "art_would_use_move": art,
            "advice": advice(version, move_in_kernel, art, known)}


def advice(version: Optional[Version], move_in_kernel: bool, art: bool, known: Sequence[Dict[str, Any]]) -> str:
    """One paragraph: what the facts mean for a user of this tool."""
    if version is None:
        return ("the kernel release could not be read, so every known MOVE bug may apply: compare against a "
                "kernel whose version is known")
    if not move_in_kernel:
        return ("this kernel has no UFFDIO_MOVE (Linux >= 6.8, with UFFD_FEATURE_MOVE): MOVE strategies fall back "
                "to COPY, as ART does here")
    parts = []
    if art:
        parts.append("ART would use MOVE on this kernel")
    else:
        parts.append(f"ART would NOT use MOVE on this kernel (its MoveIoctlKernelCheck wants {ART_MOVE_RELEASES}): "
                     "MOVE results here describe a configuration ART never runs")
    serious = [b for b in known if b["affects_collections"]]
    if serious:
        fixes = "; ".join(f"{b['id']}: fixed in {', '.join(b['fixed_in'] or ['(pending)'])}" for b in serious)
        parts.append(f"it may have {len(serious)} known MOVE bug(s) its collections can hit ({fixes}): use a kernel "
                     "with the fixes, or --strategy copy; a crash or a verification failure under MOVE here may be "
                     "the kernel's")
    others = [b for b in known if not b["affects_collections"]]
    if others:
        parts.append(f"{', '.join(b['id'] for b in others)} may apply to other users of UFFDIO_MOVE (compactor.uffd)"
                     " but not to compactor's collections: " + " ".join(b["what"] for b in others))
    if not known:
        parts.append("no known MOVE bug applies")
    return "; ".join(parts) + "."


@functools.lru_cache(maxsize=1)
def running_kernel_facts() -> Dict[str, Any]:
    """:func:`evaluate` of the running kernel, probed once per process."""
    return evaluate()


def render_bug(bug: Dict[str, Any]) -> str:
    """One line: the id, the title, and how it was judged."""
    how = bug["evidence"]
    if bug.get("probe"):
        how += f": {bug['probe']['result']}" if bug["evidence"] == "probed" else \
            f" (probe: {bug['probe']['result']}, {bug['probe']['detail']})"
    fixed = ", ".join(bug["fixed_in"]) if bug["fixed_in"] else "fix pending"
    return f"{bug['id']}: {bug['title']} [{how}; fixed in: {fixed}]"


_warned = False


def warn_for_strategy(strategy: str, facts: Optional[Dict[str, Any]] = None, *, stacklevel: int = 2) -> bool:
    """Warns (KernelMoveWarning, once per process) when ``strategy`` uses MOVE and the kernel (``facts`` from
    :func:`evaluate`; default: the running kernel's) may have a known MOVE bug that collections can hit
    (``affects_collections`` in the table). Returns whether it warned."""
    global _warned
    if _warned or strategy not in MOVE_STRATEGIES:
        return False
    facts = running_kernel_facts() if facts is None else facts
    relevant = [b for b in facts["known_bugs"] if b["affects_collections"]]
    if not relevant:
        return False
    _warned = True
    ids = ", ".join(f"{b['id']} ({b['evidence']})" for b in relevant)
    warnings.warn(KernelMoveWarning(
        f"strategy {strategy!r} uses UFFDIO_MOVE, and this kernel ({facts['release']}) may have known MOVE bugs: "
        f"{ids}. Advice: {facts['advice']} (python -m compactor info lists them)"), stacklevel=stacklevel + 1)
    return True


__all__ = ["ART_MOVE_MINIMUMS", "BUGS_FILE", "MOVE_STRATEGIES", "advice", "art_would_use_move", "evaluate",
           "in_ranges", "load_bugs", "parse_release", "probe_wp_across_move", "render_bug", "running_kernel_facts",
           "warn_for_strategy"]
