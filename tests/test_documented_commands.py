"""Every command the README and docs/ show, run as a user types it (a subprocess of the
venv's script from the repository root), on small data.

Expected failures must print one line naming what is wrong and exit non-zero, never a
Python traceback.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
from pathlib import Path

import pytest

from tests.commands import REPO, Completed, run, serving_ui
from tests.conftest import copy_home

pytestmark = pytest.mark.slow

# a logged warning ("- WARNING -") or a Python warning (SupersessionWarning: ...)
WARNING = re.compile(r"\bWARNING\b|\w+Warning:")


# the programs whose documented command lines this module runs, by how they start
TESTED_COMMANDS = (
    "aiwf demo", "aiwf ui", "dg check defs", "dg dev", "dg launch", "dagster job backfill",
    "dagster asset materialize", "python3 -m venv .venv", "aiwf bench --quick",
    "dagster job execute",
)
DOCUMENTED_IN = ("README.md", "docs/AUTOMATION.md")


def documented_commands() -> list[str]:
    """Each command line of the bash blocks in DOCUMENTED_IN that runs aiwf, dg or dagster,
    continuation lines joined, comments and environment assignments dropped."""
    commands = []
    for page in DOCUMENTED_IN:
        text = (REPO / page).read_text()
        for block in re.findall(r"```bash\n(.*?)```", text, re.S):
            for line in block.replace("\\\n", " ").splitlines():
                line = line.split("  #", 1)[0].strip()
                if line.startswith("#"):
                    continue
                words = [w for w in shlex.split(line) if not re.match(r"^[A-Z_]+=", w)]
                if words and words[0] != "export":
                    command = shlex.join(w.removeprefix(".venv/bin/") for w in words)
                    if re.search(r"\b(aiwf|dg|dagster)\b", command):
                        commands.append(command)
    return list(dict.fromkeys(commands))  # README and docs repeat some


def documented(start: str) -> list[str]:
    """The argv of the one documented command that starts with `start`."""
    found = [c for c in documented_commands() if c.startswith(start)]
    assert len(found) == 1, f"expected one documented `{start} ...`, found {found}"
    return shlex.split(found[0])


def test_every_documented_command_has_a_test() -> None:
    commands = documented_commands()
    assert len(commands) >= 7
    untested = [c for c in commands if not c.startswith(TESTED_COMMANDS)]
    assert not untested, f"documented but not run by a test: {untested}"


def assert_clean_failure(done: Completed, code: int, *phrases: str) -> None:
    """Exit `code`, no traceback, one line on stderr that contains every phrase."""
    assert done.returncode == code, done.describe()
    assert "Traceback" not in done.output, done.describe()
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.describe()
    for phrase in phrases:
        assert phrase in lines[0], done.describe()


def test_generate_without_faults(tmp_path: Path) -> None:
    home = tmp_path / "home"
    done = run(
        "aiwf", "generate", "--days", "2", "--scale", "0.05", "--faults", "none", home=home
    )
    assert done.returncode == 0, done.describe()
    assert done.stdout.rstrip().endswith("faults: none")
    assert sorted(p.name for p in (home / "landing" / "web_orders").iterdir()) == [
        "2026-01-01.jsonl", "2026-01-02.jsonl"
    ]


def test_generate_with_an_unknown_fault_names_the_allowed_ones(tmp_path: Path) -> None:
    done = run("aiwf", "generate", "--days", "2", "--faults", "typos", home=tmp_path / "h")
    assert_clean_failure(done, 2, "aiwf generate:", "unknown fault(s): typos", "malformed_rows")
    assert not (tmp_path / "h" / "landing").exists()


def test_a_usage_error_is_one_line(tmp_path: Path) -> None:
    done = run("aiwf", "generate", "--days", "many", home=tmp_path / "h")
    assert_clean_failure(done, 2, "--days", "invalid int value", "aiwf generate --help")


def test_rollback_without_an_earlier_champion(tmp_path: Path) -> None:
    done = run("aiwf", "model", "rollback", "churn", home=tmp_path / "h")
    assert_clean_failure(done, 1, "aiwf model rollback:", "no earlier champion")


def test_rollback_of_an_unknown_family_names_the_families(tmp_path: Path) -> None:
    done = run("aiwf", "model", "rollback", "recommendations", home=tmp_path / "h")
    assert_clean_failure(done, 2, "invalid choice: 'recommendations'", "recommender")


def test_rollback_restores_the_earlier_champion(tmp_path: Path) -> None:
    from aiwf_assets.io.model_store import ModelStore
    from aiwf_assets.settings import local_pii_key

    home = tmp_path / "h"
    # signed with the home's own key, as the CLI's store (resources.ModelStoreResource) reads it
    store = ModelStore.local(str(home / "models"), local_pii_key(home / "pii.key"))
    cards = [
        store.save(
            {"weights": n}, family="churn", model_name=f"model_{n}", params={}, metrics={},
            baseline_metrics={}, data_versions={}, row_counts={},
            trained_through=f"2026-02-0{n}", code_version="1",
        )
        for n in (1, 2)
    ]
    for card in cards:
        store.record("churn", card.version, "promote", "beat the champion")

    done = run("aiwf", "model", "rollback", "churn", home=home)
    assert done.returncode == 0, done.describe()
    assert done.stdout.strip() == (
        f"churn: champion is now model_1 version {cards[0].version} "
        "(trained through 2026-02-01)"
    )
    assert store.registry("churn").champion == cards[0].version

    again = run("aiwf", "model", "rollback", "churn", home=home)
    assert_clean_failure(again, 1, "no earlier champion")
    assert store.registry("churn").champion == cards[0].version


def test_evaluate_without_generated_data(tmp_path: Path) -> None:
    done = run("aiwf", "evaluate", home=tmp_path / "h")
    assert_clean_failure(done, 1, "aiwf evaluate:", "aiwf generate")


def test_dg_check_defs_loads_the_project_quietly(tmp_path: Path) -> None:
    home = tmp_path / "h"
    (home / "dagster_home").mkdir(parents=True)  # as `aiwf demo` / `aiwf ui` leave it
    shutil.copyfile(REPO / "aiwf_assets" / "dagster.yaml", home / "dagster_home" / "dagster.yaml")
    done = run("dg", "check", "defs", home=home)
    assert done.returncode == 0, done.describe()
    assert "All definitions loaded successfully." in done.output
    assert not WARNING.search(done.output), done.describe()


def test_ui_starts_quietly(tmp_path: Path) -> None:
    home = tmp_path / "h"
    with serving_ui(home) as ui:
        pass
    output = ui.output()
    assert f"open {ui.url}" in output
    assert "Serving dagster-webserver on" in output
    assert not WARNING.search(output), output[-4000:]
    assert (home / "dagster_home" / "dagster.yaml").exists()


def test_bench_quick_measures_every_case_and_writes_its_report(tmp_path: Path) -> None:
    # as documented, with the scratch directory in tmp_path: the default (/tmp/aiwf-bench)
    # is shared by everyone on the machine
    work = tmp_path / "bench"
    done = run(*documented("aiwf bench"), "--work", str(work), home=tmp_path / "h",
               timeout=1800)
    assert done.returncode == 0, done.describe()
    assert "Traceback" not in done.output
    report = work / "RESULTS-quick.md"
    assert done.stdout.rstrip().endswith(
        f"[bench] wrote {report} and {work / 'results.json'}"
    ), done.describe()

    results = json.loads((work / "results.json").read_text())
    assert results["command"] == "python -m benchmarks --quick"
    assert results["plan"] == [{"scale": 1.0, "days": 5, "repeat": 1}]
    cases = {r["case"] for r in results["records"]}
    assert {"generate", "parse_once", "full_build", "after_build", "common_recipe",
            "multiprocess_build", "demo"} <= cases
    assert results["demo"] == {"scale": 0.2, "days": 60, "repeat": 1}
    # the real `aiwf demo` (the tests' small demo), its whole tree measured, its home removed
    [demo] = [r for r in results["records"] if r["case"] == "demo"]
    assert demo["payload"]["command"] == "aiwf demo --days 60 --scale 0.2"
    assert demo["cpu_s"] > 5  # the demo's own CPU, not only the parent's
    demo_log = Path(demo["payload"]["log"]).read_text()
    assert "phase 4/4: refresh_job" in demo_log and "Traceback" not in demo_log
    assert not (work / "runs" / "demo-s0.2d60").exists()
    for record in results["records"]:
        assert record["wall_s"] > 0 and record["peak_rss"] > 0, record
    [build] = [r for r in results["records"] if r["case"] == "full_build" and r["days"] == 5]
    rows = build["payload"]["rows"]
    assert 0 < rows["cleaned"] <= rows["raw"]  # some rows quarantined, none invented
    # every measured case is announced, then reported with its wall time
    for record in results["records"]:
        label = (f"{record['case']} scale={record['scale']:g} days={record['days']} "
                 f"rep={record['rep']}")
        assert re.search(rf"\[bench\] {label}: [0-9.]+ s wall", done.stdout), label

    text = report.read_text()
    assert text.startswith("# aiwf benchmarks")
    assert "Generated by `python -m benchmarks --quick`" in text
    assert "## Targets" in text and "## 1. Full build" in text
    assert re.search(r"^\| 1 \| 5 \| [0-9.]+ s", text, re.M), text[:3000]


# on the small demo (tests/conftest.py: one `aiwf demo --days 60 --scale 0.2` a session) ----
def test_demo_prints_phases_progress_and_its_partitions(small_demo_home: Path) -> None:
    output = (small_demo_home / "demo-output.txt").read_text()
    assert "Traceback" not in output
    assert "daily partitions 2026-01-01 .. 2026-03-01" in output
    assert "phase 1/4: reference_job: reference data" in output
    assert (
        "phase 2/4: daily_ingest_job: raw and cleaned days, each with its own data version, "
        "60 days (2026-01-01 .. 2026-03-01)"
    ) in output
    assert "phase 3/4: daily_ingest_job: daily marts and monitoring, 60 days" in output
    assert "phase 4/4: refresh_job: marts, features, models, serving, monitoring" in output
    assert re.search(r"raw_web_orders 60/60 days, [0-9,]+ rows", output)
    assert re.search(r"cleaned tables 30/60 days, [0-9,]+ rows", output)
    assert "  done    raw_web_orders" in output
    assert "  done    churn_model" in output
    assert "champion models (holdout metrics):" in output


def test_the_demos_partitions_are_the_days_it_holds(small_demo_home: Path) -> None:
    code = (
        "import dagster as dg\n"
        "from aiwf_assets.definitions import defs\n"
        "keys = defs.resolve_job_def('daily_ingest_job').partitions_def.get_partition_keys()\n"
        "with dg.DagsterInstance.get() as instance:\n"
        "    done = instance.get_materialized_partitions(dg.AssetKey('raw_web_orders'))\n"
        "print(keys[0], keys[-1], len(keys), len(set(keys) - done))\n"
    )
    done = run("python", "-c", code, home=small_demo_home)
    assert done.returncode == 0, done.describe()
    assert done.stdout.split() == ["2026-01-01", "2026-03-01", "60", "0"]  # none missing


def test_evaluate_on_the_demo(small_demo_home: Path) -> None:
    done = run("aiwf", "evaluate", home=small_demo_home)
    assert done.returncode == 0, done.describe()
    assert done.stdout.startswith("| family |")
    assert "| demand |" in done.stdout
    # 60 days leave too few churn snapshots before the truth's cutoff: said, not crashed
    assert "| churn |" in done.stdout and "not evaluated: churn training needs" in done.stdout


def test_rollback_with_only_one_champion(small_demo_home: Path) -> None:
    done = run("aiwf", "model", "rollback", "churn", home=small_demo_home)
    assert_clean_failure(done, 1, "cannot roll back churn: there is no earlier champion")


def tour_daemon(home: Path, *args: str) -> object:
    """One step of the daemon's part of the tour (tests/tour_daemon.py) on `home`."""
    done = run("python", "-m", "tests.tour_daemon", *args, home=home)
    assert done.returncode == 0, done.describe()
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_tour_drop_a_file(small_demo_home: Path, tmp_path: Path) -> None:
    """README tour, step 3: the late POS file copied into the landing zone is observed and
    runs raw, cleaned, the marts and pipeline_health of its day only (the daemon's sensor
    and automation ticks played by tests/tour_daemon.py on the demo's instance, each run
    as the automation requests it); an identical copy is not even observed."""
    home = copy_home(small_demo_home, tmp_path)
    day = "2026-02-12"
    step = re.search(r"`(cp \.aiwf/incoming/late/\S+ \.aiwf/landing/\S+/)`",
                     (REPO / "README.md").read_text())
    assert step, "the tour's cp command"
    _, source, target = shlex.split(step.group(1).replace(".aiwf", str(home)))
    assert Path(source).name == f"{day}.csv"

    assert tour_daemon(home, "observe") == []  # `aiwf ui` started: the demo's files known
    assert tour_daemon(home, "tick") == {}  # and nothing to do
    shutil.copy(source, target)
    assert tour_daemon(home, "observe") == [["landing_pos_transactions", day]]
    assert tour_daemon(home, "tick") == {"raw_pos_transactions": [day]}
    assert tour_daemon(home, "run", day, "raw_pos_transactions") is True
    cleaned = {t: [day] for t in ("interactions", "order_lines", "orders", "quarantine")}
    requested = tour_daemon(home, "tick")
    assert requested == cleaned, requested
    assert tour_daemon(home, "run", day, *cleaned) is True
    # the day's dbt chain in one run, and that day's pipeline health
    requested = tour_daemon(home, "tick")
    assert set(map(tuple, requested.values())) == {(day,)}, requested
    assert {"stg_cleaned__orders", "fct_orders", "pipeline_health"} <= set(requested)
    assert all(k.startswith(("stg_", "int_", "fct_")) for k in set(requested) - {
        "pipeline_health"}), requested

    shutil.copy(source, target)  # the same bytes again
    assert tour_daemon(home, "observe") == []


def test_the_documented_backfills_and_launch(small_demo_home: Path, tmp_path: Path) -> None:
    home = copy_home(small_demo_home, tmp_path)

    launch = run(*documented("dg launch"), home=home)
    assert launch.returncode == 0, launch.describe()
    assert "RUN_SUCCESS" in launch.output

    materialize = run(*documented("dagster asset materialize"), home=home)
    assert materialize.returncode == 0, materialize.describe()
    assert "RUN_SUCCESS" in materialize.output

    backfill = run(*documented("dagster job backfill"), home=home)
    assert backfill.returncode == 0, backfill.describe()
    code = (
        "import dagster as dg\n"
        "with dg.DagsterInstance.get() as instance:\n"
        "    backfills = instance.get_backfills()\n"
        "print(len(backfills), len(backfills[0].partition_names or []))\n"
    )
    queued = run("python", "-c", code, home=home)
    assert queued.stdout.split() == ["1", "14"], queued.describe()  # the daemon launches them

    # the held-back day (its POS file emptied) is published only with the documented override
    argv = documented("dagster job execute")
    tags = json.loads(argv[argv.index("--tags") + 1])
    day = tags["dagster/partition"]
    held = run(*argv[: argv.index("--tags")], "--tags", json.dumps({"dagster/partition": day}),
               home=home)
    assert held.returncode != 0 and "aiwf/accept_drop=pos_transactions" in held.output, (
        held.describe()
    )
    accepted = run(*argv, home=home)
    assert accepted.returncode == 0, accepted.describe()
    assert "RUN_SUCCESS" in accepted.output
    code = (
        "import duckdb, os\n"
        "db = duckdb.connect(os.environ['AIWF_HOME'] + '/warehouse.duckdb', read_only=True)\n"
        "print(db.sql(\"select rows_in from cleaned.file_accounting where channel = "
        f"'pos_transactions' and partition_date = '{day}'\").fetchall())\n"
    )
    published = run("python", "-c", code, home=home)
    assert published.stdout.strip() == "[(0,)]", published.describe()


@pytest.mark.parametrize(
    "argv",
    [
        ("dg", "launch", "--assets", "raw_web_orders", "--partition", "2025-06-01"),
        (
            "dagster", "asset", "materialize", "-m", "aiwf_assets.definitions",
            "--select", "raw_web_orders", "--partition", "2025-06-01",
        ),
    ],
    ids=["dg launch", "dagster asset materialize"],
)
def test_a_partition_outside_the_window_names_the_setting(
    argv: tuple[str, ...], tmp_path: Path
) -> None:
    """Dagster's own CLI error for a day before AIWF_PARTITION_START says which setting to
    change (docs/SOURCES.md "Files that cover several days"); nothing runs."""
    home = tmp_path / "home"
    (home / "dagster_home").mkdir(parents=True)
    done = run(*argv, home=home, env={"AIWF_PARTITION_START": "2026-01-01"})
    assert done.returncode != 0, done.describe()
    assert (
        "day(s) 2025-06-01 outside the daily partition window (from "
        "AIWF_PARTITION_START=2026-01-01 to today, UTC): set AIWF_PARTITION_START to an "
        "earlier day"
    ) in done.output, done.describe()
    assert "RUN_START" not in done.output
