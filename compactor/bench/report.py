"""Human-readable rendering of a bench report (rich tables), CSV, plots and raw samples, and `compare`."""

from __future__ import annotations

import os
from typing import List

import numpy as np
from rich.console import Console
from rich.table import Table

from .generational import young_full_rows
from .machines import retried_line
from .output import atomic_write  # noqa: F401  (their old home)
from .output import write_bench_csv as write_csv  # noqa: F401  (their old home)
from .speed import render_line


def _ms(x) -> str:
    return "-" if x is None else f"{1e3 * x:.1f}"


def render(report: dict, console: Console) -> None:
    env = report["environment"]
    emulated = env.get("emulated")
    note = " — emulated: not a performance measurement" if emulated else ""
    console.print(f"[bold]compactor.bench[/bold] {report.get('created', '')}  Linux {env['kernel']} {env['arch']}, "
                  f"{env['page_size']}-byte pages, {env['cpus']} cpus, {env['where']}"
                  f"{' (virtual machine)' if env.get('virtualized') else ''}{note}")
    line = move_kernel_line(env)
    if line:
        console.print(line)
    cfg, heap = report["config"], report["heap"]
    g = cfg.get("generations")
    shape = "from an HPROF dump" if heap.get("hprof") else (
        f"generational: old {g['old_fraction']:.0%}, mid {g['mid_fraction']:.0%} of the space, young survival "
        f"{g['young_survival']:.0%}" if g else f"{cfg['live_fraction']:.0%} live ({cfg['garbage']})")
    console.print(f"heap {cfg['heap_bytes'] >> 20} MiB, {shape}, "
                  f"{heap['objects']:,} objects, {heap['to_space_pages']:,} to-space pages; "
                  f"{cfg['repeat']} repetitions "
                  f"interleaved; batch {cfg['batch']} pages; executor {cfg['executor']}")
    h = heap.get("hprof")
    if h:
        hist = ", ".join(f"{k}: {v:,}" for k, v in h["size_histogram"].items())
        console.print(f"real heap: {h['hprof']} ({h['version']}), heap '{h['heap']}' x{h['scale']}: {h['objects']:,} "
                      f"objects per copy ({h['instances']:,} instances, {h['object_arrays']:,} object arrays, "
                      f"{h['primitive_arrays']:,} primitive arrays), {h['mean_refs_per_object']:.2f} references per "
                      f"object, roots {h['roots']}; sizes (bytes) {hist}; live fraction "
                      f"{report['heap']['live_bytes'] / max(cfg['heap_bytes'], 1):.0%} of the space, "
                      f"{heap['empty_pages']:,} pages without live data")
    else:
        console.print(f"synthetic heap: {heap['mean_refs_per_object']:.2f} references per object, "
                      f"{heap.get('empty_pages', 0):,} pages without live data")
    t = Table(title="Install and compaction floor (ns per page, median)" + note, title_justify="left")
    for c in ("operation", "ns/page", "pages/ioctl"):
        t.add_column(c, justify="right" if c != "operation" else "left")
    for m in report["limits"].values():
        t.add_row(m["description"], f"{m['median_ns_per_page']:.0f}", str(m["pages_per_call"]))
    console.print(t)
    t = Table(title="GC (compacting) thread completion time" + note, title_justify="left")
    for c in ("strategy", "faults", "mut.", "profile", "median ms", "min-max ms", "vs copy", "pause ms",
              "pages: copy/move/batched/fallback/by mutators", "TLB IPIs (/1000 pages)", "CPUs needed/had",
              "fault p50/p99 us", "verified"):
        t.add_column(c)
    for r in report["runs"]:
        if r["status"] != "measured":
            t.add_row(_strategy(r), r["faults"], str(r["mutators"]), _profile(r), "-", "-", "-", "-", r["reason"],
                      "-", "-", "-", "-")
            continue
        p, lat = r["pages"], r["fault_latency_us"]
        fb = p.get("copy_fallback_pool_empty", 0) + p.get("copy_fallback_ebusy", 0) + p.get("copy_short_run", 0)
        pages = (f"{p.get('copy', 0)}/{p.get('move', 0) + p.get('dense_move', 0)}/{p.get('move_batched', 0)}/"
                 f"{fb}/{p.get('by_mutators', 0)}")
        latency = f"{lat.get('p50', 0):.1f}/{lat.get('p99', 0):.1f}" if lat.get("samples") else "-"
        ratio = "-" if r["ratio_vs_copy_median"] is None else f"{r['ratio_vs_copy_median']:.2f}x"
        irq, per_k = (r.get("interrupts") or {}).get("tlb_shootdowns"), r.get("shootdowns_per_1000_pages")
        tlb = "-" if irq is None else f"{irq:.0f} ({per_k:.1f})" if per_k is not None else f"{irq:.0f}"
        mach = r.get("machine") or {}
        cpus = f"{mach.get('threads_needed', '-')}/{mach.get('cpus', '-')}" if mach.get("cpus") else "-"
        t.add_row(_strategy(r), r["faults"], str(r["mutators"]), _profile(r), _ms(r["median"]),
                  f"{_ms(r['min'])}-{_ms(r['max'])}", ratio, _ms(r["pause_median"]), pages, tlb, cpus, latency,
                  "yes" if r["verified"] else "NO")
    console.print(t)
    render_young_full(report, console, note)
    render_mutator_view(report, console, note)
    swapped = [r for r in report["runs"] if r.get("swap")]
    if swapped:
        swapped_share = report['config'].get('options', {}).get('swapped', 0)
        t = Table(title=f"Swapped heap: {swapped_share:.0%} of the pages paged out "
                        "before each pause (medians; swap-ins are system-wide pswpin)", title_justify="left")
        for c in ("strategy", "mut.", "GC ms", "vs copy", "pages paged out", "swap-ins", "major faults"):
            t.add_column(c, justify="right")
        for r in swapped:
            sw = r["swap"]
            n = lambda v: "-" if v is None else f"{v:,.0f}"  # noqa: E731
            t.add_row(r["strategy"], str(r["mutators"]), _ms(r["median"]),
                      "-" if r["ratio_vs_copy_median"] is None else f"{r['ratio_vs_copy_median']:.2f}x",
                      n(sw["pages_paged_out"]), n(sw["swap_ins"]), n(sw["major_faults"]))
        console.print(t)
    line = render_line(report["compaction"]) if report.get("compaction") else None
    if line:
        console.print(line)
    t = Table(title="The seed's claims, here", title_justify="left", show_lines=True)
    for c in ("claim", "seed", "measured", "holds", "verdict"):
        t.add_column(c)
    for c in report["claims"]:
        m = "-" if c["measured"] is None else f"{100 * c['measured']:.0f}%"
        seed = "-" if c.get("seed_value") is None else f"{100 * c['seed_value']:.0f}%"
        t.add_row(c["id"], seed, m, c["holds"], c["verdict"] + f" [dim]({c['where']})[/dim]")
    console.print(t)
    for r in report["runs"]:
        if r.get("fallback"):
            console.print(f"[yellow]note[/yellow]: {r['key']}: {'; '.join(r['fallback'])}")
    render_fleet(report, console)


def render_fleet(report: dict, console: Console) -> None:
    """A bench run on a cluster (--cluster): which machine ran each comparison, and the ones retried after their
    worker died."""
    cluster = report["config"].get("cluster")
    if not cluster:
        return
    console.print(f"cluster {cluster}; the install and compaction floors from "
                  f"{report['config'].get('machine_of_limits')}")
    for label, env in (report.get("machines") or {}).items():
        keys = [r["key"] for r in report["runs"] if r.get("ran_on") == label]
        console.print(f"  {label} (Linux {env.get('kernel')} {env.get('arch')}, {env.get('cpu_model', '?')}, "
                      f"{env.get('page_size')}-byte pages): {', '.join(keys)}")
    for r in report.get("retried") or []:
        console.print(retried_line(r, ""))


def move_kernel_line(env: dict):
    """One line on the kernel's MOVE facts (environment.move_kernel; None for reports made before it existed):
    whether ART would use MOVE, the known MOVE bugs this kernel may have and how each was judged, the advice."""
    mk = env.get("move_kernel")
    if mk is None:
        return None
    bugs = ", ".join(f"{b['id']} ({b['evidence']}"
                     + (f": {b['probe']['result']})" if b["evidence"] == "probed" and b.get("probe") else ")")
                     for b in mk["known_bugs"]) or "none"
    return (f"MOVE kernel facts: ART would use MOVE: {'yes' if mk['art_would_use_move'] else 'no'}; "
            f"known MOVE bugs this kernel may have: {bugs}; advice: {mk['advice']}")


def _profile(r: dict) -> str:
    return r.get("profile", "stress") if r["mutators"] else "-"


def _strategy(r: dict) -> str:
    """The strategy, with "(young)" for a young collection's run."""
    return r["strategy"] + (" (young)" if r.get("kind") == "young" else "")


def render_young_full(report: dict, console: Console, note: str = "") -> None:
    """Young and full collections side by side (a report with --gc young): per kind and strategy the GC-thread
    time, against COPY of the same kind and (young) against the full collection of the same strategy, and what it
    did by generation: pages mapped back (MOVE/COPY) and compacted, old pages (with an object to update), dirty
    cards (card objects), bytes scanned and freed (ART's {Young,Full}GcScannedBytes/FreedBytes) and the app's slow
    path (AppSlowPathDuring{Young,Full}Gc)."""
    rows = young_full_rows(report["runs"])
    if not rows:
        return
    t = Table(title="Young and full collections (medians): GC-thread time, and what each did by generation" + note,
              title_justify="left")
    for c in ("kind", "strategy", "faults", "mut.", "profile", "GC ms", "vs copy", "young vs full",
              "mapped back move/copy", "compacted", "old pages (updated)", "dirty cards (objects)", "scanned MiB",
              "freed MiB", "app slow path ms", "verified"):
        t.add_column(c, justify="left" if c in ("kind", "strategy", "faults", "profile") else "right")
    for r in sorted(rows, key=lambda r: (r["faults"], r["mutators"], r["profile"], r["kind"] != "young")):
        g = r["generational"]
        x = lambda v: "-" if v is None else f"{v:.2f}x"  # noqa: E731
        mib = lambda v: "-" if v is None else f"{v / 2**20:.1f}"  # noqa: E731
        t.add_row(r["kind"], r["strategy"], r["faults"], str(r["mutators"]), r["profile"] if r["mutators"] else "-",
                  _ms(r["median"]), x(r["ratio_vs_copy_median"]), x(r["ratio_vs_full_median"]),
                  f"{g.get('pages_mapped_back_move', '-')}/{g.get('pages_mapped_back_copy', '-')}",
                  str(g.get("pages_compacted", "-")), f"{g.get('old_pages', '-')} ({g.get('old_pages_updated', '-')})",
                  f"{g.get('dirty_cards', '-')} ({g.get('card_objects', '-')})", mib(g.get("scanned_bytes")),
                  mib(g.get("freed_bytes")), _num(g.get("app_slow_path_ms"), "{:.2f}"),
                  "yes" if r["verified"] else "NO")
    console.print(t)


def _num(x, fmt: str = "{:.1f}") -> str:
    return "-" if x is None else fmt.format(x)


def render_mutator_view(report: dict, console: Console, note: str = "") -> None:
    """What the mutators saw, per run with mutators (medians over the repetitions): the share of pages they
    resolved themselves and how many per ms of the phase, fault latency, the longest stall, their access rate
    during the phase against before it, fresh pages, new objects and frames."""
    rows = [r for r in report["runs"] if r["status"] == "measured" and r["mutators"] and r.get("mutator_view")]
    if not rows:
        return
    t = Table(title="Mutator view (medians): what the app's threads saw" + note, title_justify="left")
    for c in ("strategy", "faults", "mut.", "profile", "pages resolved by mutators", "pages/ms", "faults",
              "fault p50/p99 us", "longest stall us", "access rate during/before", "fresh pages zero/zero+move/copy",
              "new objects", "frames (late)"):
        t.add_column(c, justify="left" if c in ("strategy", "faults", "profile") else "right")
    for r in rows:
        v = r["mutator_view"]
        fresh = v.get("fresh_pages") or {}
        n = lambda x: _num(x, "{:,.0f}")  # noqa: E731
        t.add_row(_strategy(r), r["faults"], str(r["mutators"]), _profile(r),
                  _num(v.get("pages_resolved_share"), "{:.0%}"), _num(r.get("mutator_pages_per_ms"), "{:.2g}"),
                  n(v.get("faults")), f"{_num(v.get('fault_p50_us'))}/{_num(v.get('fault_p99_us'))}",
                  _num(v.get("longest_stall_us"), "{:.0f}"), _num(v.get("rate_during_vs_before"), "{:.2f}"),
                  f"{n(fresh.get('zeropage'))}/{n(fresh.get('zero_and_move'))}/{n(fresh.get('copy'))}",
                  n(v.get("new_objects")), f"{n(v.get('frames'))} ({n(v.get('frames_late'))})")
    console.print(t)


def _times_panel(ax, measured: List[dict], env: dict, heap_bytes: int) -> None:
    """Horizontal bars, one per scenario (top to bottom in run order): median GC-thread time, min-max whiskers."""
    y = np.arange(len(measured))[::-1]
    med = [1e3 * r["median"] for r in measured]
    lo = [1e3 * (r["median"] - r["min"]) for r in measured]
    hi = [1e3 * (r["max"] - r["median"]) for r in measured]
    ax.barh(y, med, xerr=[lo, hi], capsize=3,
            color=["#888" if r["strategy"] == "stw" else "#c44" if r["strategy"] == "copy" else "#48c"
                   for r in measured])
    ax.set_yticks(y, [f"{_strategy(r)} {r['faults']}/{r['mutators']}m"
                      + (f" {r['profile']}" if r["mutators"] and r.get("profile", "stress") != "stress" else "")
                      for r in measured], fontsize=8)
    ax.set_xlabel("GC thread completion time (ms), median and min-max")
    title = f"Linux {env['kernel']} {env['arch']}, {heap_bytes >> 20} MiB heap"
    if env.get("emulated"):
        title += " (emulated: not a performance measurement)"
    ax.set_title(title, fontsize=9)


def _latency_panel(ax, measured: List[dict], samples: dict) -> None:
    """Fault-latency CDFs from the raw samples; without them (a report read back), the report's percentiles."""
    if samples:
        for key, s in samples.items():
            if len(s):
                x = np.sort(s) / 1e3
                ax.step(x, np.arange(1, x.size + 1) / x.size, where="post", label=key)
        ax.set_title("Fault-latency CDF per scenario", fontsize=9)
    else:
        qs = (("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p99.9", 0.999), ("max", 1.0))
        for r in measured:
            lat = r.get("fault_latency_us") or {}
            if lat.get("samples"):
                ax.step([lat[k] for k, _ in qs], [q for _, q in qs], where="post", marker=".", label=r["key"])
        ax.set_title("Fault-latency percentiles per scenario (p50, p90, p99, p99.9, max)", fontsize=9)
    ax.set_xscale("log")
    ax.set_xlabel("fault service latency (us)")
    ax.set_ylabel("fraction of faults")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)


def write_plot(report: dict, samples: dict, path: str) -> None:
    """Completion time per scenario (horizontal bars, the figure as tall as the scenarios need) and fault latency."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    measured = [r for r in report["runs"] if r["status"] == "measured"]
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, max(4.5, 1.2 + 0.32 * len(measured))))
    _times_panel(a, measured, report["environment"], report["config"]["heap_bytes"])
    _latency_panel(b, measured, samples)
    fig.tight_layout()
    tmp = path + ".tmp" + os.path.splitext(path)[1]
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)


def write_raw(samples: dict, directory: str) -> List[str]:
    os.makedirs(directory, exist_ok=True)
    written = []
    for key, s in samples.items():
        name = os.path.join(directory, key.replace("/", "_") + ".npy")
        np.save(name, np.asarray(s, dtype=np.uint64))
        written.append(name)
    return written


def compare(a: dict, b: dict, console: Console, names=("A", "B")) -> None:
    def label(r):
        e = r["environment"]
        return f"Linux {e['kernel']} {e['arch']} ({e['where']}{', emulated' if e.get('emulated') else ''})"

    console.print(f"{names[0]}: {label(a)}\n{names[1]}: {label(b)}")
    t = Table(title="GC thread completion time, median ms", title_justify="left")
    for c in ("scenario", names[0], names[1], f"{names[1]}/{names[0]}", f"vs copy {names[0]}", f"vs copy {names[1]}"):
        t.add_column(c)
    keyed_b = {r["key"]: r for r in b["runs"]}
    for r in a["runs"]:
        s = keyed_b.get(r["key"])
        if s is None:
            continue
        am, bm = r.get("median"), s.get("median")
        ratio = f"{bm / am:.2f}" if am and bm else "-"
        rv = lambda x: "-" if x.get("ratio_vs_copy_median") is None else f"{x['ratio_vs_copy_median']:.2f}x"  # noqa: E731
        t.add_row(r["key"], _ms(am), _ms(bm), ratio, rv(r), rv(s))
    console.print(t)
    t = Table(title="Claims", title_justify="left")
    for c in ("claim", names[0], names[1]):
        t.add_column(c)
    cb = {c["id"]: c for c in b["claims"]}
    for c in a["claims"]:
        d = cb.get(c["id"], {})
        f = lambda x: "-" if x.get("measured") is None else f"{100 * x['measured']:.0f}% ({x['holds']})"  # noqa: E731
        t.add_row(c["id"], f(c), f(d))
    console.print(t)


def compare_many(docs: List[dict], console: Console, names: List[str]) -> None:
    """Three or more bench reports: each file's machine and kernel, then per scenario each file's median GC-thread
    time and ratio against COPY (a run from a cluster names its machine)."""
    for n, d in zip(names, docs):
        e = d["environment"]
        machines = ", ".join(d.get("machines") or {}) or e.get("model") or e.get("where")
        console.print(f"{n}: Linux {e['kernel']} {e['arch']} ({e['where']}{', emulated' if e.get('emulated') else ''};"
                      f" {machines})")
    t = Table(title="GC thread completion time, median ms (vs copy)", title_justify="left")
    for c in ["scenario", *names]:
        t.add_column(c)
    keys: List[str] = []
    for d in docs:
        keys += [r["key"] for r in d["runs"] if r["key"] not in keys]
    by = [{r["key"]: r for r in d["runs"]} for d in docs]
    for k in keys:
        def one(r) -> str:
            if r is None or r.get("median") is None:
                return "-"
            q = r.get("ratio_vs_copy_median")
            return _ms(r["median"]) + ("" if q is None or r["strategy"] == "copy" else f" ({q:.2f}x)")

        t.add_row(k, *(one(b.get(k)) for b in by))
    console.print(t)
