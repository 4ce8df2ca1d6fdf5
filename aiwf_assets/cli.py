"""`aiwf` command line: generate demo data, run the demo, open the UI, evaluate, manage models.

Heavy imports (Dagster, the definitions) happen inside the commands, after
`--home` has been applied to the environment, because settings are read once.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from pathlib import Path
from typing import NoReturn

from aiwf_assets.settings import reset_settings_cache


def _apply_home(home: str | None, env: str | None = None) -> None:
    if home:
        os.environ["AIWF_HOME"] = str(Path(home).expanduser().resolve())
    if env:
        os.environ["AIWF_ENV"] = env
    reset_settings_cache()


def _faults(text: str) -> tuple[str, ...]:
    return tuple(f.strip() for f in text.split(",") if f.strip()) if text else ()


def _add_generation_args(parser: argparse.ArgumentParser, *, days: int, faults: str) -> None:
    parser.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    parser.add_argument("--days", type=int, default=days, help=f"days to generate ({days})")
    parser.add_argument(
        "--start", type=dt.date.fromisoformat, default=dt.date(2026, 1, 1),
        help="first day, YYYY-MM-DD (2026-01-01)",
    )
    parser.add_argument(
        "--scale", type=float, default=1.0,
        help="size: 1 is ~100k order lines per 30 days, ~5k customers",
    )
    parser.add_argument(
        "--faults", type=str, default=faults,
        help="comma-separated faults to inject, or 'all' (see docs/DATA_CONTRACTS.md)",
    )
    parser.add_argument(
        "--drift-from", type=dt.date.fromisoformat, default=None,
        help="day from which the distribution drifts (with the distribution_drift fault)",
    )


def cmd_generate(args: argparse.Namespace) -> int:
    from aiwf_assets.generator import generate
    from aiwf_assets.settings import get_settings

    summary = generate(
        get_settings().home, seed=args.seed, start=args.start, days=args.days,
        scale=args.scale, faults=_faults(args.faults), drift_from=args.drift_from,
    )
    print(summary.to_text())
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from aiwf_assets.settings import get_settings

    options = {
        "seed": args.seed, "start": args.start, "days": args.days, "scale": args.scale,
        "faults": _faults(args.faults), "drift_from": args.drift_from,
        "generate_data": not args.no_generate,
    }
    if get_settings().env == "prod":
        from aiwf_assets.prod_demo import run_prod_demo

        return run_prod_demo(**options)
    from aiwf_assets.demo import run_demo

    return run_demo(**options)


def cmd_ui(args: argparse.Namespace) -> int:
    from aiwf_assets.demo import prepare_dagster_home

    dagster_home = prepare_dagster_home()
    repo = Path(__file__).resolve().parent.parent
    # `dg dev` in the project folder finds the code location through pyproject's [tool.dg];
    # the dg script installed beside this interpreter, so an unactivated venv works
    dg_script = Path(sys.executable).with_name("dg")
    cmd = [str(dg_script), "dev", "--host", "127.0.0.1", "--port", str(args.port)]
    print(f"DAGSTER_HOME={dagster_home}\nopen http://127.0.0.1:{args.port}", flush=True)
    os.environ["DAGSTER_HOME"] = str(dagster_home)
    os.chdir(repo)
    os.execv(cmd[0], cmd)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from aiwf_assets.ml.evaluate import evaluate_against_truth
    from aiwf_assets.resources import build_resources
    from aiwf_assets.settings import get_settings

    settings = get_settings()
    warehouse = build_resources(settings)["warehouse"].get()
    print(evaluate_against_truth(settings.home, warehouse).markdown)
    return 0


def cmd_model_rollback(args: argparse.Namespace) -> int:
    from aiwf_assets.io.model_store import rollback
    from aiwf_assets.resources import build_resources

    card = rollback(build_resources()["model_store"].store(), args.family)
    # a version is the sha256 of the artifact's bytes (content-addressed store)
    print(
        f"{args.family}: champion is now {card.model_name} version {card.version} "
        f"(trained through {card.trained_through})"
    )
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from benchmarks.runner import execute

    return execute(args)


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line (the full usage is one `--help` away)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="aiwf", description=__doc__)
    parser.add_argument("--home", help="AIWF_HOME (default ./.aiwf)")
    parser.add_argument("--env", choices=["local", "prod"], help="AIWF_ENV (default local)")
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("generate", help="write the synthetic retailer's files to landing/")
    _add_generation_args(gen, days=60, faults="")
    gen.set_defaults(func=cmd_generate)

    demo = sub.add_parser(
        "demo",
        help="generate demo data and materialise every asset in-process, then summarise "
        "(with --env prod: on S3 and Postgres, see docs/DEPLOY.md)",
    )
    _add_generation_args(demo, days=60, faults="all")
    demo.add_argument(
        "--no-generate", action="store_true",
        help="use the landing zone as it is (in prod: the files under s3://<bucket>/<prefix>/landing)",
    )
    demo.set_defaults(func=cmd_demo)

    ui = sub.add_parser("ui", help="start the Dagster UI (dg dev) on this AIWF_HOME")
    ui.add_argument("--port", type=int, default=3000)
    ui.set_defaults(func=cmd_ui)

    ev = sub.add_parser(
        "evaluate", help="model quality vs baselines and the generator's truth (the ceiling)"
    )
    ev.set_defaults(func=cmd_evaluate)

    from benchmarks.runner import add_arguments

    bench = sub.add_parser(
        "bench", help="full, incremental and no-op builds vs the common recipe (benchmarks/)"
    )
    add_arguments(bench)
    bench.set_defaults(func=cmd_bench)

    model = sub.add_parser("model", help="model store operations")
    model_sub = model.add_subparsers(dest="model_command", required=True)
    rollback = model_sub.add_parser("rollback", help="restore the previous champion")
    rollback.add_argument(
        "family", choices=("churn", "segmentation", "demand", "recommender"),
        help="churn, segmentation, demand or recommender",
    )
    rollback.set_defaults(func=cmd_model_rollback)
    return parser


# Errors whose message tells the user what to do: printed as one line without a traceback,
# exiting 2 for wrong input or settings (like a usage error), 1 for a refusal or a failed run.
USER_ERRORS: tuple[tuple[str, str, int], ...] = (
    ("aiwf_assets.settings", "SettingsError", 2),
    ("aiwf_assets.generator.faults", "GenerationArgumentError", 2),
    ("aiwf_assets.io.model_store", "NoChampionError", 1),
    ("aiwf_assets.io.model_store", "ModelIntegrityError", 1),
    ("aiwf_assets.demo", "DemoRunFailed", 1),
    ("aiwf_assets.ml.evaluate", "TruthMissingError", 1),
)


def user_error_exit_code(exc: BaseException) -> int | None:
    """The exit code for a user-facing error, None for a bug (which keeps its traceback).

    Only modules already imported are consulted: an error class can only have been
    raised if its module was loaded, and the CLI stays free of heavy imports.
    """
    for module_name, class_name, code in USER_ERRORS:
        module = sys.modules.get(module_name)
        if module is not None and isinstance(exc, getattr(module, class_name)):
            return code
    return None


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    command = " ".join(
        part for part in (args.command, getattr(args, "model_command", None)) if part
    )
    try:
        _apply_home(args.home, args.env)
        return int(args.func(args) or 0)
    except Exception as exc:
        code = user_error_exit_code(exc)
        if code is None:
            raise
        print(f"aiwf {command}: {exc}", file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
