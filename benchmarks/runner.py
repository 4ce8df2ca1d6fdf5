"""Orchestrates the benchmark: data per (scale, days), every case in a fresh process, the report.

`python -m benchmarks --scales 1,10,100 --days 30 --repeat 3` runs everything and
writes benchmarks/RESULTS.md and benchmarks/results.json; `--quick` is a smoke run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from benchmarks import report
from benchmarks.measure import Measurement, run_case, run_command
from benchmarks.stats import parse_day_caps, parse_scales, read_machine, scale_label

HERE = Path(__file__).resolve().parent
SEED = 7
DAYS_CURVE_SHORT = 10  # memory vs days: this many days against --days at one scale
DEFAULT_PROD_DSN = "postgresql://postgres@127.0.0.1:5432/test"
PROD_TABLE = "cleaned.order_lines"  # the table the loaders (COPY, ADBC) are compared on
BENCH_PII_KEY = "62656e63682d6b65792d6e6f742d612d736563726574"  # a fixed, public bench key
# `aiwf demo` is measured at this scale (or the smallest planned) over --days, but at least
# DEMO_MIN_DAYS: its models need that much history (with 30 days churn, demand and the
# recommender have no training window and the demo fails); --quick: the tests' small demo
DEMO_SCALE = 1.0
DEMO_MIN_DAYS = 60
QUICK_DEMO = {"scale": 0.2, "days": 60}


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
        "--redo-prod", default="",
        help="measure only the production path again at these scales (e.g. 1,10; --repeat "
        "times), each repetition a local and a prod full build side by side, and replace the "
        "prod rows in the results.json beside --out; the report lists the amendment",
    )
    parser.add_argument(
        "--quick", action="store_true",
        help="smoke run: scale 1, 5 days, 1 repetition, and `aiwf demo --days 60 --scale 0.2` "
        "(a few minutes)",
    )
    parser.add_argument(
        "--downstream", default="",
        help="scales at which the layers after cleaned (dbt marts, features, models, "
        "serving, monitoring) are also built once after the data layers (default: only on "
        "the long history; the models need ~90 days of history)",
    )
    parser.add_argument(
        "--prod", nargs="?", const="all", default="",
        help="also run the full and incremental builds on the production path (Postgres "
        "warehouse, S3 storage on moto's server on loopback) beside the local ones, and "
        "compare the Postgres loaders (COPY, ADBC); optional scales, e.g. --prod 1,10 "
        "(default: every scale)",
    )
    parser.add_argument(
        "--prod-dsn", default=os.environ.get("AIWF_BENCH_POSTGRES_DSN", DEFAULT_PROD_DSN),
        help="Postgres for --prod (a schema per run, dropped after; default "
        "$AIWF_BENCH_POSTGRES_DSN or " + DEFAULT_PROD_DSN + ")",
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
    if getattr(args, "prod", ""):
        parts.append("--prod" if args.prod == "all" else f"--prod {args.prod}")
    return " ".join(parts)


class Bench:
    """Runs cases and keeps every measurement."""

    def __init__(self, work: Path):
        self.work = work
        self.records: list[dict] = []

    def measure(self, case: str, kwargs: dict, *, scale: float, days: int, rep: int,
                home: Path | None = None, prod: dict[str, str] | None = None,
                record_as: str | None = None) -> Measurement:
        """Run `case`; with `prod` (its environment) on the production path, recorded as
        `prod_<case>`; `record_as`: recorded under that case name instead."""
        env = dict(prod or {})
        if home is not None:
            env |= {"AIWF_HOME": str(home), "DAGSTER_HOME": str(home / "dagster_home")}
        label = f"{'prod ' if prod else ''}{case} scale={scale_label(scale)} days={days} rep={rep}"
        print(f"[bench] {label} ...", flush=True)
        result = run_case(case, kwargs, env=env, log_dir=self.work / "logs")
        print(
            f"[bench] {label}: {result.wall_s:.1f} s wall, {result.cpu_s:.1f} s cpu, "
            f"{result.peak_rss / 2**20:.0f} MiB peak", flush=True,
        )
        record = {"scale": scale, "days": days, "rep": rep, **asdict(result)}
        if prod:
            record["case"] = f"prod_{case}"
        if record_as:
            record["case"] = record_as
        self.records.append(record)
        (self.work / "records.json").write_text(json.dumps(self.records, default=str))
        return result

    def measure_command(self, case: str, argv: list[str], *, scale: float, days: int,
                        rep: int, home: Path) -> Measurement:
        """Run `argv` as a user types it on a fresh `home` (AIWF_HOME; its DAGSTER_HOME
        inside, as the command makes it) and record it as `case`."""
        shutil.rmtree(home, ignore_errors=True)
        env = {"AIWF_HOME": str(home), "DAGSTER_HOME": str(home / "dagster_home")}
        label = f"{case} scale={scale_label(scale)} days={days} rep={rep}"
        print(f"[bench] {label} ...", flush=True)
        result = run_command(case, argv, env=env, log_dir=self.work / "logs",
                             payload={"command": " ".join(["aiwf", *argv[1:]])})
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
    prod_scales = parse_prod(getattr(args, "prod", ""), scales)
    work = Path(args.work)
    bench = Bench(work)
    started = time.time()
    load_at_start = os.getloadavg()
    plan = []
    services: ProdServices | None = None
    with ExitStack() as stack:  # moto's server stops also when a case fails
        if prod_scales:
            services = stack.enter_context(prod_services(work, args.prod_dsn))
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
            if services is not None and scale in prod_scales:
                run_prod(bench, services, landing, scale, scale_days, reps)

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
    # `aiwf demo` as typed (generation, every layer, models, summary): one repetition
    demo = demo_plan(scales, days, day_caps, quick=args.quick)
    measure_demo(bench, demo["scale"], demo["days"])
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
        "prod": {"scales": prod_scales, "table": PROD_TABLE} if prod_scales else None,
        "load_avg": {"start": load_at_start, "end": os.getloadavg()},
        "curve": {"scale": small, "short_days": short_days, "full_days": full_days},
        "demo": {**demo, "repeat": 1},
        "profiles": profiles,
        "records": bench.records,
    }


def demo_plan(scales: list[float], days: int, day_caps: dict[float, int], *,
              quick: bool = False) -> dict:
    """Where `aiwf demo` is measured: scale 1 (or the smallest planned) over its days, at
    least DEMO_MIN_DAYS; the tests' small demo with --quick."""
    if quick:
        return dict(QUICK_DEMO)
    scale = DEMO_SCALE if DEMO_SCALE in scales else min(scales)
    return {"scale": scale, "days": max(day_caps.get(scale, days), DEMO_MIN_DAYS)}


def demo_argv(scale: float, days: int) -> list[str]:
    """`aiwf demo` as a user types it (the venv's script), at `scale` over `days`."""
    return [str(Path(sys.executable).parent / "aiwf"), "demo", "--days", str(days),
            "--scale", scale_label(scale)]


def measure_demo(bench: Bench, scale: float, days: int, rep: int = 0) -> Measurement:
    """The real `aiwf demo` in a subprocess on a fresh home: wall, CPU of its process tree
    and so its CPU utilisation (CPU / wall; 200 % is both cores busy all the time)."""
    home = bench.work / "runs" / f"demo-s{scale_label(scale)}d{days}"
    result = bench.measure_command("demo", demo_argv(scale, days), scale=scale, days=days,
                                   rep=rep, home=home)
    shutil.rmtree(home)
    return result


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
    return amend_long(results, plan, bench.records, amendment(
        f"long history (scale {scale_label(plan['scale'])} × {plan['days']} days)",
        f"python -m benchmarks --redo-long --long {args.long} --repeat {args.repeat}", started,
    ))


def amendment(what: str, command: str, started: float) -> dict:
    """What a --redo-* run measured again, by which command, at which commit, when, how long
    and under what load (the report's amendment note)."""
    return {
        "what": what, "command": command, "commit": git_commit(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(started)),
        "elapsed_s": time.time() - started, "load_avg": os.getloadavg(),
    }


def redo_prod(args: argparse.Namespace, results: dict) -> dict:
    """The production path measured again at --redo-prod's scales (the days of the run being
    amended), with a local full build and incremental update beside it in the same run: the
    prod rows' ratios then compare builds of one session (the recipe rows keep the run's own
    local builds)."""
    planned = {p["scale"]: p["days"] for p in results["plan"]}
    scales = parse_prod(args.redo_prod, list(planned))
    started = time.time()
    bench = Bench(Path(args.work))
    with prod_services(bench.work, args.prod_dsn) as services:
        for scale in scales:
            landing = bench.data(scale, planned[scale])
            run_prod(bench, services, landing, scale, planned[scale], args.repeat,
                     local_beside=True)
    return amend_prod(results, scales, bench.records, amendment(
        "production path (scales " + ", ".join(scale_label(s) for s in scales)
        + ", each beside a local build of the same session)",
        f"python -m benchmarks --redo-prod {args.redo_prod} --repeat {args.repeat}", started,
    ))


def amend_prod(
    results: dict, scales: list[float], records: list[dict], amendment: dict
) -> dict:
    """`results` with the prod records (and local builds measured beside them) at `scales`
    replaced by `records`' (a generate record is kept: the data is the run's), the
    amendment listed."""
    def replaced(r: dict) -> bool:
        return r["scale"] in scales and r["case"].startswith("prod_")

    kept = [r for r in results["records"] if not replaced(r)]
    new = [r for r in records if replaced(r)]
    prod = results.get("prod") or {"scales": [], "table": PROD_TABLE}
    prod = {**prod, "scales": sorted({*prod["scales"], *scales})}
    return {**results, "records": kept + new, "prod": prod,
            "amendments": [*results.get("amendments", []), amendment]}


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


def parse_prod(text: str, scales: list[float]) -> list[float]:
    """--prod's scales: '' -> none, 'all' -> every planned scale, '1,10' -> those (planned)."""
    if not text.strip():
        return []
    if text == "all":
        return list(scales)
    wanted = parse_scales(text)
    unplanned = [s for s in wanted if s not in scales]
    if unplanned:
        raise ValueError(f"--prod scales {unplanned} are not in --scales {scales}")
    return wanted


@dataclass(frozen=True)
class ProdServices:
    """The production path's services: moto's S3 server on loopback and a Postgres."""

    s3_url: str
    dsn: str

    def env(self, name: str) -> dict[str, str]:
        """The environment of a prod case: its own bucket and warehouse schema suffix."""
        return {
            "AIWF_ENV": "prod",
            "AIWF_S3_BUCKET": f"aiwf-bench-{name}",
            "AIWF_S3_PREFIX": "aiwf",
            "AIWF_S3_ENDPOINT": self.s3_url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AIWF_WAREHOUSE_DSN": self.dsn,
            "AIWF_WAREHOUSE_SCHEMA_SUFFIX": f"_bench_{name.replace('-', '_')}",
            "AIWF_PII_KEY": BENCH_PII_KEY,
        }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def prod_services(work: Path, dsn: str) -> Iterator[ProdServices]:
    """moto's S3 server in its own process on a free loopback port (its CPU and memory are
    not the measured case's), and the Postgres at `dsn` (checked, never started here)."""
    import psycopg

    try:
        psycopg.connect(dsn, connect_timeout=5).close()
    except psycopg.OperationalError as exc:
        raise RuntimeError(f"--prod needs the Postgres at {dsn} (--prod-dsn): {exc}") from exc
    port = free_port()
    (work / "logs").mkdir(parents=True, exist_ok=True)
    log = (work / "logs" / "moto-server.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(url, timeout=1).close()
                break
            except (urllib.error.URLError, ConnectionError):
                if server.poll() is not None:
                    raise RuntimeError(f"moto's server exited; see {log.name}") from None
                time.sleep(0.1)
        else:
            raise RuntimeError(f"moto's server did not answer at {url}; see {log.name}")
        yield ProdServices(url, dsn)
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def run_prod(bench: Bench, services: ProdServices, landing: Path, scale: float, days: int,
             reps: int, local_beside: bool = False) -> None:
    """The production path at one scale: per repetition a fresh home, bucket and warehouse
    schema, the landing files uploaded (timed apart), the full build; then incremental and
    no-op updates and the loader comparison on the last repetition's build. `local_beside`:
    each repetition first builds the same data locally (recorded as `prod_local_*`, what
    the prod rows are compared with)."""
    names = [f"s{scale_label(scale).replace('.', 'p')}-{rep}" for rep in range(reps)]
    try:
        for rep, name in enumerate(names):
            if local_beside:
                local = bench.fresh_home(landing, f"prod-local-{name}")
                bench.measure("full_build", {}, scale=scale, days=days, rep=rep, home=local,
                              record_as="prod_local_full_build")
                if rep == reps - 1:
                    bench.measure("after_build", {"change_days": change_days(landing, reps),
                                                  "repeat": reps},
                                  scale=scale, days=days, rep=0, home=local,
                                  record_as="prod_local_after_build")
                shutil.rmtree(local)
            env = services.env(name)
            create_bucket(services, env["AIWF_S3_BUCKET"])
            home = bench.fresh_home(landing, f"prod-{name}")
            bench.measure("upload_landing", {}, scale=scale, days=days, rep=rep, home=home,
                          prod=env)
            bench.measure("full_build", {}, scale=scale, days=days, rep=rep, home=home,
                          prod=env)
            if rep < reps - 1:
                drop_prod_run(services, env, home)
        bench.measure("after_build", {"change_days": change_days(landing, reps),
                                      "repeat": reps},
                      scale=scale, days=days, rep=0, home=home, prod=env)
        bench.measure("warehouse_load", {"table": PROD_TABLE, "repeat": reps},
                      scale=scale, days=days, rep=0, home=home, prod=env)
    finally:
        for name in names:
            drop_prod_run(services, services.env(name), bench.work / "runs" / f"prod-{name}")


def create_bucket(services: ProdServices, bucket: str) -> None:
    import boto3

    client = boto3.client("s3", endpoint_url=services.s3_url, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    client.create_bucket(Bucket=bucket)


def drop_prod_run(services: ProdServices, env: dict[str, str], home: Path) -> None:
    """A prod run's warehouse schemas, bucket contents and home, gone (if they exist)."""
    import boto3
    import psycopg

    suffix = env["AIWF_WAREHOUSE_SCHEMA_SUFFIX"]
    with psycopg.connect(services.dsn, autocommit=True) as conn:
        schemas = [row[0] for row in conn.execute(
            "SELECT schema_name FROM information_schema.schemata WHERE right(schema_name, %s)"
            " = %s", [len(suffix), suffix],
        ).fetchall()]
        for schema in schemas:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    bucket = boto3.resource("s3", endpoint_url=services.s3_url, region_name="us-east-1",
                            aws_access_key_id="testing",
                            aws_secret_access_key="testing").Bucket(env["AIWF_S3_BUCKET"])
    try:
        bucket.objects.all().delete()
        bucket.delete()
    except bucket.meta.client.exceptions.NoSuchBucket:
        pass
    shutil.rmtree(home, ignore_errors=True)


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
    elif args.redo_prod:
        results = redo_prod(args, json.loads(out.with_name("results.json").read_text()))
    else:
        results = run(args)
    out.with_name("results.json").write_text(json.dumps(results, indent=1, default=str))
    out.write_text(report.render(results))
    print(f"[bench] wrote {out} and {out.with_name('results.json')}")
    return 0
