"""Page compaction at memory speed (issue 13): the build before the work against this tree, side by side.

Both builds of compactor-runner (the same CMake flags, Release) execute one plan file, interleaved
(before/after/after/before ...) so that the machine's drift hits both alike:
- every scenario of the default bench (stw; copy, move, move-alloc, hybrid with SIGBUS and 0 and CPUs-1 mutators),
  reporting the GC thread's time, and for stw the pause;
- the GC thread's compaction time per page it compacted (copy/sigbus/0).
Then this tree's compaction floor (page copy, live-stride copy, compact_page) on the same heap planned for 4 KiB
and for 16 KiB pages, per KiB, measured by the runner (user space only: a 16 KiB plan runs on a 4 KiB kernel).

Targets (issue 13, 256 MiB, 50% live): stop-the-world at most 0.6x before; no scenario slower (paired median
ratio at most 1.05x: these machines are noisy); 16 KiB pages within 10% of 4 KiB pages' speed per byte.

    python benchmarks/compaction.py [--baseline REV] [--heap 256MiB] [--repeat 7] [--json PATH]

The baseline defaults to 7a90666, the last commit before the work; its runner is built from `git archive` into
build/compaction-bench/REV (kept for the next run), this tree's into build/compaction-bench/current.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

import compactor
from compactor.bench.env import default_mutators

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BASELINE = "7a90666"
BUILD_ROOT = os.path.join(ROOT, "build", "compaction-bench")


def build_runner(source: str, build: str) -> str:
    gen = ["-G", "Ninja"] if shutil.which("ninja") else []
    subprocess.run(["cmake", "-S", source, "-B", build, *gen, "-DCMAKE_BUILD_TYPE=Release", "-DCOMPACTOR_PYTHON=OFF",
                    "-DCOMPACTOR_RUNNER=ON"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", build, "--target", "compactor-runner"], check=True, stdout=subprocess.DEVNULL)
    return os.path.join(build, "compactor-runner")


def baseline_runner(rev: str) -> str:
    p = subprocess.run(["git", "-C", ROOT, "rev-parse", "--verify", "--short=12", rev + "^{commit}"],
                       capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"--baseline {rev}: no such commit in {ROOT} (a shallow clone lacks history: git fetch --unshallow)")
    sha = p.stdout.strip()
    where = os.path.join(BUILD_ROOT, sha)
    exe = os.path.join(where, "build", "compactor-runner")
    if os.access(exe, os.X_OK):
        return exe
    src = os.path.join(where, "src")
    shutil.rmtree(where, ignore_errors=True)
    os.makedirs(src)
    archive = subprocess.run(["git", "-C", ROOT, "archive", "--format=tar", sha],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", src], input=archive, check=True)
    return build_runner(src, os.path.join(where, "build"))


def run(runner: str, plan: str, *args: str) -> dict:
    p = subprocess.run([runner, plan, *args], capture_output=True, text=True, timeout=1800)
    if p.returncode != 0:
        sys.exit(f"{runner} {' '.join(args)} failed ({p.returncode}): {p.stderr.strip()}")
    return json.loads(p.stdout)


def scenarios() -> list:
    out = [("stw", 0)]
    for s in ("copy", "move", "move-alloc", "hybrid"):
        out += [(s, m) for m in default_mutators()]
    return out


def paired(a: list, b: list) -> float:
    return statistics.median([y / x for x, y in zip(a, b)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--baseline", default=BASELINE)
    ap.add_argument("--heap", default="256MiB")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--json")
    args = ap.parse_args()
    if not shutil.which("cmake"):
        sys.exit("cmake is needed to build the two runners (apt-get install cmake, or pip install cmake)")
    print(f"building the runners (baseline {args.baseline}, this tree) ...", flush=True)
    try:
        runners = {"before": baseline_runner(args.baseline),
                   "after": build_runner(ROOT, os.path.join(BUILD_ROOT, "current"))}
    except subprocess.CalledProcessError as e:
        sys.exit(f"building a runner failed: {' '.join(map(str, e.cmd))} exited with {e.returncode}")
    tmp = tempfile.mkdtemp(prefix="compactor-compaction-")
    try:
        plans = {}
        for ps in (4096, 16384):
            heap = compactor.Heap.generate(compactor.HeapSpec(size=args.heap, live_fraction=0.5, seed=1), page_size=ps)
            plans[ps] = os.path.join(tmp, f"heap-{ps}.plan")
            compactor.plan(heap, page_size=ps).save(plans[ps])
        native_ps = os.sysconf("SC_PAGE_SIZE")
        if native_ps not in plans:
            sys.exit(f"collections need a plan for this kernel's {native_ps}-byte pages; "
                     "only 4 KiB and 16 KiB are made")
        plan = plans[native_ps]
        scen = scenarios()
        gc = {(b, s): [] for b in runners for s in scen}
        pause = {b: [] for b in runners}
        compact = {b: [] for b in runners}
        for rep in range(args.repeat):
            order = ["before", "after"] if rep % 2 == 0 else ["after", "before"]
            for s, m in scen:
                for b in order:
                    flags = ["--strategy", s, "--seed", str(rep + 1)]
                    if s != "stw":
                        flags += ["--faults", "sigbus", "--mutators", str(m)]
                    r = run(runners[b], plan, *flags)["runs"][0]
                    if not r["verified"]:
                        sys.exit(f"{b} {s}/{m}: the heap was not verified")
                    gc[(b, (s, m))].append(r["gc_thread_s"])
                    if s == "stw":
                        pause[b].append(r["pause_s"])
                    if (s, m) == ("copy", 0):
                        pages = r["pages"]["total"] - r["pages"].get("by_mutators", 0)
                        compact[b].append(r["gc_time_ns"]["compact"] / pages)
            print(f"repetition {rep + 1}/{args.repeat} done", flush=True)
        floors = {}
        for ps, path in plans.items():
            rows = run(runners["after"], path, "--compaction-floor", "--repeat", str(args.repeat))
            floors[ps] = {m["name"]: m["median_ns_per_page"] * 1024 / ps for m in rows}  # ns per KiB
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    ms = lambda xs: 1e3 * statistics.median(xs)  # noqa: E731
    result = {"heap": args.heap, "repeat": args.repeat, "baseline": args.baseline, "scenarios": [],
              "floor_ns_per_kib": floors}
    print(f"\n{args.heap}, 50% live, {args.repeat} repetitions interleaved; baseline {args.baseline} vs this tree")
    print(f"{'scenario':<22} {'before ms':>10} {'after ms':>10} {'after/before':>13}")
    slower = []
    for s, m in scen:
        key = "stw" if s == "stw" else f"{s}/sigbus/{m}"
        a, b = gc[("before", (s, m))], gc[("after", (s, m))]
        ratio = paired(a, b)
        slower += [key] if ratio > 1.05 else []
        result["scenarios"].append({"key": key, "before_s": a, "after_s": b, "ratio": ratio})
        print(f"{key:<22} {ms(a):10.1f} {ms(b):10.1f} {ratio:12.2f}x")
    stw = paired(pause["before"], pause["after"])
    cpp = paired(compact["before"], compact["after"])
    print(f"\ncopy/sigbus/0 GC compaction per page: before {statistics.median(compact['before']):.0f} ns, after "
          f"{statistics.median(compact['after']):.0f} ns ({cpp:.2f}x)")
    print("compaction floor of this tree, ns per KiB (4 KiB pages | 16 KiB pages):")
    for name in floors[4096]:
        print(f"  {name:<18} {floors[4096][name]:8.0f} | {floors[16384][name]:8.0f}  "
              f"({floors[16384][name] / floors[4096][name]:.2f}x)")
    per_byte = floors[16384]["compact_page"] / floors[4096]["compact_page"]
    result.update(stw_ratio=stw, compact_per_page_ratio=cpp, per_byte_16k_vs_4k=per_byte, slower=slower)
    print(f"\n1. stop-the-world after/before = {stw:.2f}x (target <= 0.60x): {'met' if stw <= 0.6 else 'MISSED'}")
    print(f"2. no scenario slower (paired ratio <= 1.05x): {'met' if not slower else 'MISSED: ' + ', '.join(slower)}")
    print(f"3. 16 KiB pages per byte = {per_byte:.2f}x of 4 KiB pages (target within 10%): "
          f"{'met' if per_byte <= 1.10 else 'MISSED'}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
