"""`python -m compactor info`: what this machine offers for the emulation."""

from __future__ import annotations

import json
import os
import platform
from typing import Any, Dict, List, Optional

from . import _native
from .errors import UffdUnavailable
from .kernel_facts import ART_MOVE_RELEASES, render_bug
from .kernel_facts import evaluate as kernel_move_facts
from .swap import probe as swap_probe
from .uffd import PAGE_SIZE, probe


def environment(user_mode_only: bool = True) -> Dict[str, Any]:
    """Kernel release, architecture, page size, how userfaultfd was opened, the feature names, whether MOVE,
    SIGBUS and MREMAP_DONTUNMAP are usable, and ``move_kernel``: the kernel's MOVE facts (the known MOVE bugs it
    may have, by version and by probing, whether ART would use MOVE on it, the advice; compactor.kernel_facts)."""
    env: Dict[str, Any] = {
        "kernel": platform.release(),
        "arch": platform.machine(),
        "page_size": PAGE_SIZE,
        "cpus": os.cpu_count(),
        "uid": os.getuid(),
        "mremap_dontunmap": bool(_native.mremap_dontunmap_usable()),
    }
    try:
        f = probe(user_mode_only=user_mode_only)
        env.update(userfaultfd=True, opened_by=f.opened_by, user_mode_only=user_mode_only,
                   features=sorted(f.names), feature_bits=f.bits, move="move" in f, sigbus="sigbus" in f)
    except UffdUnavailable as e:
        env.update(userfaultfd=False, error=str(e), features=[], feature_bits=0, move=False, sigbus=False)
    sw = swap_probe()
    env["swap"] = {"active": [d.name for d in sw.active], "zram": sw.zram}
    env["move_kernel"] = kernel_move_facts(move=env["move"], user_mode_only=user_mode_only)
    return env


def render_move_kernel(facts: Dict[str, Any]) -> List[str]:
    """The kernel's MOVE facts as text lines (info, and the bench's report header)."""
    yes = "yes" if facts["art_would_use_move"] else "no"
    lines = [f"ART uses MOVE     {yes} (its MoveIoctlKernelCheck: {ART_MOVE_RELEASES}, and MOVE in the kernel)"]
    bugs = facts["known_bugs"]
    lines.append(f"known MOVE bugs   {len(bugs) or 'none'} this kernel may have"
                 + (" (compactor/data/move_kernel_bugs.json)" if bugs else ""))
    lines += [f"  - {render_bug(b)}" for b in bugs]
    lines.append(f"advice            {facts['advice']}")
    return lines


def render(env: Dict[str, Any]) -> str:
    def yes(b: object) -> str:
        return "yes" if b else "no"

    lines = [
        f"kernel            {env['kernel']} ({env['arch']}), page size {env['page_size']} bytes, {env['cpus']} cpus",
    ]
    if env["userfaultfd"]:
        lines += [
            f"userfaultfd       opened by {env['opened_by']}"
            + (" with UFFD_USER_MODE_ONLY" if env.get("user_mode_only") else ""),
            f"features          {', '.join(env['features'])}",
        ]
    else:
        lines.append(f"userfaultfd       UNAVAILABLE: {env['error']}")
    lines += [
        f"UFFDIO_MOVE       {yes(env['move'])}" + ("" if env["move"] else " (needs Linux >= 6.8; COPY still works)"),
        f"SIGBUS faults     {yes(env['sigbus'])}",
        f"MREMAP_DONTUNMAP  {yes(env['mremap_dontunmap'])}",
        f"swap              {', '.join(env['swap']['active']) or 'none active'}; zram "
        + ("available" if env["swap"]["zram"] else "not in this kernel"),
    ]
    lines += render_move_kernel(env["move_kernel"])
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m compactor info", description=__doc__)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--no-user-mode-only", action="store_true", help="probe without UFFD_USER_MODE_ONLY")
    args = ap.parse_args(argv)
    env = environment(user_mode_only=not args.no_user_mode_only)
    print(json.dumps(env, indent=2) if args.json else render(env))
    return 0 if env["userfaultfd"] else 2
