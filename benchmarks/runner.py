"""Orchestrates the benchmark: data per (scale, days), every case in a fresh process, the report.

`python -m benchmarks --scales 1,10,100 --days 30 --repeat 3` runs everything and
writes benchmarks/RESULTS.md and benchmarks/results.json; `--quick` is a smoke run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import time
from dataclasses import asdict
from pathlib import Path

from benchmarks import report
from benchmarks.measure import Measurement, run_case
from benchmarks.stats import parse_day_caps, parse_scales, read_machine, scale_label

HERE = Path(__file__).resolve().parent
SEED = 7
DAYS_CURVE_SHORT = 10  # memory vs days: this many days against --days at one scale


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    add_arguments(parser)
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The benchmark's options (also used by `aiwf bench`)."""
    parser.add_argument("--scales", default="1,10,100", help="comma-separated (1,10,100)")
    parser.add_argument("--days", type=int, default=30, help="days of data per scale (30)")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions per case (3)")
    parser.add_argument(
        "--days-cap", default="",
        help="fewer days at a scale, e.g. 100:10 (reported); default: --days everywhere",
    )
    parser.add_argument(
        "--repeat-cap", default="",
        help="fewer repetitions at a scale, e.g. 100:1 (reported); default: --repeat everywhere",
    )
    parser.add_argument(
        "--long", default="10:365",
        help="SCALE:DAYS of the long-history case (one full build, then incremental and "
        "no-op updates measured against it); '' skips it (default 10:365)",
    )
    parser.add_argument(
        "--redo-long", action="store_true",
        help="measure only the long-history case (--long, --repeat) again and replace it in "
        "the results.json beside --out; the report lists the amendment and its commit",
    )
    parser.add_argument(
        "--quick", action="store_true",
        help="smoke run: scale 1, 5 days, 1 repetition (about 2 minutes)",
    )
    parser.add_argument(
        "--downstream", default="",
        help="scales at which the layers after cleaned (dbt marts, features, models, "
        "serving, monitoring) are also built once after the data layers (default: only on "
        "the long history; the models need ~90 days of history)",
    )
    parser.add_argument(
        "--work", default="/tmp/aiwf-bench", help="scratch directory for data and runs"
    )
    parser.add_argument(
        "--out", default=None,
        help="the report (benchmarks/RESULTS.md; with --quick WORK/RESULTS-quick.md)",
    )


def command_line(args: argparse.Namespace) -> str:
    """The command that reproduces a run with these options."""
    if args.quick:
        return "python -m benchmarks --quick"
    parts = ["python -m benchmarks", f"--scales {args.scales}", f"--days {args.days}",
             f"--repeat {args.repeat}"]
    if args.days_cap:
        parts.append(f"--days-cap {args.days_cap}")
    if args.repeat_cap:
        parts.append(f"--repeat-cap {args.repeat_cap}")
    if args.long != "10:365":
        parts.append(f"--long '{args.long}'" if not args.long else f"--long {args.long}")
    if args.downstream:
        parts.append(f"--downstream {args.downstream}")
    return " ".join(parts)


class Bench:
    """Runs cases and keeps every measurement."""

    def __init__(self, work: Path):
        self.work = work
        self.records: list[dict] = []

    def measure(self, case: str, kwargs: dict, *, scale: float, days: int, rep: int,
                home: Path | None = None) -> Measurement:
        env = {}
        if home is not None:
            env = {"AIWF_HOME": str(home), "DAGSTER_HOME": str(home / "dagster_home")}
        label = f"{case} scale={scale_label(scale)} days={days} rep={rep}"
        print(f"[bench] {label} ...", flush=True)
        result = run_case(case, kwargs, env=env, log_dir=self.work / "logs")
        print(
            f"[bench] {label}: {result.wall_s:.1f} s wall, {result.cpu_s:.1f} s cpu, "
            f"{result.peak_rss / 2**20:.0f} MiB peak", flush=True,
        )
        self.records.append({"scale": scale, "days": days, "rep": rep, **asdict(result)})
        (self.work / "records.json").write_text(json.dumps(self.records, default=str))
        return result

    def data(self, scale: float, days: int) -> Path:
        """Generated landing data for (scale, days), made once and reused across runs."""
        root = self.work / "data" / f"s{scale_label(scale)}d{days}"
        marker = root / "bench.json"
        wanted = {"scale": scale, "days": days, "seed": SEED, "faults": "all"}
        if not (marker.exists() and json.loads(marker.read_text()) == wanted):
            shutil.rmtree(root, ignore_errors=True)
            self.measure("generate", {"home": str(root), "scale": scale, "days": days,
                                      "seed": SEED}, scale=scale, days=days, rep=0)
            marker.write_text(json.dumps(wanted))
        return root / "landing"

    def fresh_home(self, landing: Path, name: str) -> Path:
        """A new AIWF_HOME whose landing zone hard-links the generated files (no copying;
        cases that change a file replace it, which breaks the link)."""
        home = self.work / "runs" / name
        shutil.rmtree(home, ignore_errors=True)
        shutil.copytree(landing, home / "landing", copy_function=os.link)
        return home


def run(args: argparse.Namespace) -> dict:
    if args.quick:
        scales, days, repeat = [1.0], 5, 1
        day_caps: dict[float, int] = {}
        repeat_caps: dict[float, int] = {}
        long_case = None
        downstream_scales: list[float] = []
    else:
        scales, days, repeat = parse_scales(args.scales), args.days, args.repeat
        day_caps, repeat_caps = parse_day_caps(args.days_cap), parse_day_caps(args.repeat_cap)
        long_case = parse_long(args.long)
        downstream_scales = parse_scales(args.downstream) if args.downstream.strip() else []
    work = Path(args.work)
    bench = Bench(work)
    started = time.time()
    load_at_start = os.getloadavg()
    plan = []
    for scale in scales:
        scale_days = day_caps.get(scale, days)
        reps = repeat_caps.get(scale, repeat)
        plan.append({"scale": scale, "days": scale_days, "repeat": reps})
        landing = bench.data(scale, scale_days)
        for rep in range(reps):
            bench.measure("parse_once", {"landing": str(landing)}, scale=scale,
                          days=scale_days, rep=rep)
        home = None
        for rep in range(reps):
            if home is not None:
                shutil.rmtree(home)
            home = bench.fresh_home(landing, f"full-s{scale_label(scale)}-{rep}")
            bench.measure("full_build", {}, scale=scale, days=scale_days, rep=rep, home=home)
        bench.measure("after_build", {"change_days": change_days(landing, reps),
                                      "repeat": reps},
                      scale=scale, days=scale_days, rep=0, home=home)
        if scale in downstream_scales:  # on the data layers just built (and updated)
            bench.measure("downstream_build", {}, scale=scale, days=scale_days, rep=0,
                          home=home)
        shutil.rmtree(home)
        for rep in range(reps):
            storage = work / "runs" / f"recipe-s{scale_label(scale)}-{rep}"
            shutil.rmtree(storage, ignore_errors=True)
            bench.measure("common_recipe", {"landing": str(landing), "storage": str(storage)},
                          scale=scale, days=scale_days, rep=rep)
            shutil.rmtree(storage)

    long_plan = None
    if long_case is not None and long_case not in [
        {"scale": p["scale"], "days": p["days"]} for p in plan
    ]:
        long_plan = {**long_case, "repeat": repeat}
        run_long(bench, **long_plan)

    # executors, memory vs days and the profile: at the smallest scale, on fewer days too
    small = min(scales)
    full_days = day_caps.get(small, days)
    short_days = min(DAYS_CURVE_SHORT, max(1, full_days // 3))
    short_landing = bench.data(small, short_days)
    for case in ("full_build", "multiprocess_build"):
        home = bench.fresh_home(short_landing, case)
        bench.measure(case, {}, scale=small, days=short_days, rep=0, home=home)
        shutil.rmtree(home)
    # the profile: the smallest case (Dagster's share is largest) and the largest scale
    big = max(scales)
    targets = [(small, short_days)] + ([(big, day_caps.get(big, days))] if big != small else [])
    profiles = [profile(bench, scale, scale_days) for scale, scale_days in targets]

    return {
        "command": command_line(args),
        "commit": git_commit(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(started)),
        "elapsed_s": time.time() - started,
        "machine": read_machine(),
        "versions": report.versions(),
        "plan": plan,
        "long": long_plan,
        "load_avg": {"start": load_at_start, "end": os.getloadavg()},
        "curve": {"scale": small, "short_days": short_days, "full_days": full_days},
        "profiles": profiles,
        "records": bench.records,
    }


def git_commit() -> str:
    """The checked-out commit (with '+changes' when the tree is dirty), or 'unknown'."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE,
                                capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=HERE,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{commit}+changes" if dirty else commit


def redo_long(args: argparse.Namespace, results: dict) -> dict:
    """The long-history case measured again, replacing its records in `results`."""
    long_case = parse_long(args.long)
    if long_case is None:
        raise ValueError("--redo-long needs --long SCALE:DAYS")
    started = time.time()
    bench = Bench(Path(args.work))
    plan = {**long_case, "repeat": args.repeat}
    run_long(bench, **plan)
    return amend_long(results, plan, bench.records, {
        "what": f"long history (scale {scale_label(plan['scale'])} × {plan['days']} days)",
        "command": f"python -m benchmarks --redo-long --long {args.long} --repeat {args.repeat}",
        "commit": git_commit(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(started)),
        "elapsed_s": time.time() - started,
        "load_avg": os.getloadavg(),
    })


def amend_long(results: dict, plan: dict, records: list[dict], amendment: dict) -> dict:
    """`results` with the long history's records replaced by `records` (a generate record
    is kept when the data was reused), the plan updated and the amendment listed."""
    regenerated = any(r["case"] == "generate" for r in records)
    kept = [
        r for r in results["records"]
        if not (r["scale"] == plan["scale"] and r["days"] == plan["days"]
                and (r["case"] != "generate" or regenerated))
    ]
    return {**results, "records": kept + records, "long": plan,
            "amendments": [*results.get("amendments", []), amendment]}


def parse_long(text: str) -> dict | None:
    """`10:365` -> {"scale": 10.0, "days": 365}; '' -> None (no long-history case)."""
    if not text.strip():
        return None
    caps = parse_day_caps(text)
    if len(caps) != 1:
        raise ValueError(f"--long takes one SCALE:DAYS, got {text!r}")
    (scale, days), = caps.items()
    return {"scale": scale, "days": days}


def change_days(landing: Path, reps: int) -> list[str]:
    """The days whose store file the incremental case changes: from the middle on."""
    day_names = sorted(p.stem for p in (landing / "pos_transactions").glob("*.csv"))
    middle = len(day_names) // 2
    return (day_names[middle:] + day_names[:middle])[:reps]


def run_long(bench: Bench, scale: float, days: int, repeat: int) -> None:
    """A long history: one full build, then `repeat` incremental and no-op updates on it,
    then every layer after cleaned (marts, features, models, serving, monitoring)."""
    landing = bench.data(scale, days)
    home = bench.fresh_home(landing, f"long-s{scale_label(scale)}d{days}")
    bench.measure("full_build", {}, scale=scale, days=days, rep=0, home=home)
    bench.measure("after_build", {"change_days": change_days(landing, repeat),
                                  "repeat": repeat},
                  scale=scale, days=days, rep=0, home=home)
    bench.measure("downstream_build", {}, scale=scale, days=days, rep=0, home=home)
    shutil.rmtree(home)


def profile(bench: Bench, scale: float, days: int) -> dict:
    """One full data build under pyinstrument; its summary (see `cases._stop_profiler`)."""
    home = bench.fresh_home(bench.data(scale, days), "profile")
    out = bench.work / f"profile-s{scale_label(scale)}d{days}.json"
    bench.measure("full_build", {"profile_json": str(out)}, scale=scale, days=days, rep=-1,
                  home=home)
    shutil.rmtree(home)
    return {"scale": scale, "days": days, **json.loads(out.read_text())}


def main(argv: list[str] | None = None) -> int:
    return execute(build_parser().parse_args(argv))


def execute(args: argparse.Namespace) -> int:
    """Run the benchmark and write the report and the raw measurements."""
    out = Path(args.out or (Path(args.work) / "RESULTS-quick.md" if args.quick
                            else HERE / "RESULTS.md"))
    if args.redo_long:
        results = redo_long(args, json.loads(out.with_name("results.json").read_text()))
    else:
        results = run(args)
    out.with_name("results.json").write_text(json.dumps(results, indent=1, default=str))
    out.write_text(report.render(results))
    print(f"[bench] wrote {out} and {out.with_name('results.json')}")
    return 0
