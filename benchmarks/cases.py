"""The measured cases. Each runs in its own process: `python -m benchmarks.cases CASE KWARGS OUT`.

The parent (`benchmarks.measure`) sets AIWF_HOME / DAGSTER_HOME before the
process starts, because settings and partitions are read at import time. Each
case writes a JSON payload of in-process timings and counts to OUT.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

LAYER_OF_TABLE = {"order_lines": "cleaned", "interactions": "cleaned", "quarantine": "cleaned"}


# ------------------------------------------------------------------------- helpers
def step_layer(step_key: str) -> str:
    """Which layer a step of the data build belongs to (by asset naming)."""
    return "raw" if step_key.startswith("raw_") else "cleaned"


def run_stats(results) -> dict:
    """Step seconds per layer and rows per layer from the runs' event logs."""
    step_s: dict[str, float] = defaultdict(float)
    rows: dict[str, int] = defaultdict(int)
    for result in results:
        for event in result.all_events:
            if event.event_type_value == "STEP_SUCCESS":
                step_s[step_layer(event.step_key)] += event.event_specific_data.duration_ms / 1e3
        for event in result.get_asset_materialization_events():
            materialization = event.materialization
            name = materialization.asset_key.to_user_string()
            count = materialization.metadata.get("dagster/row_count")
            if count is None:
                continue
            if name.startswith("raw_") and materialization.partition:
                rows["raw"] += count.value
            elif name in LAYER_OF_TABLE:
                rows[LAYER_OF_TABLE[name]] += count.value
    return {"step_s": dict(step_s), "rows": dict(rows)}


def data_definitions():
    """landing + raw + cleaned with the resources (what the data-layer cases run)."""
    import dagster as dg

    from aiwf_assets.cleaning.assets import build_cleaning_definitions, guard_thresholds
    from aiwf_assets.ingest.assets import build_ingest_definitions
    from aiwf_assets.ingest.spec import declared_sources
    from aiwf_assets.partitions import partitions_for
    from aiwf_assets.resources import build_resources
    from aiwf_assets.settings import get_settings

    settings = get_settings()
    sources, partitions = declared_sources(settings.sources_path), partitions_for(settings)
    return dg.Definitions.merge(
        build_ingest_definitions(sources, partitions),
        build_cleaning_definitions(sources, partitions, guard_thresholds(settings)),
        dg.Definitions(resources=build_resources(settings)),
    )


def _execute(job, instance, keys, tags=None, partition_key=None):
    from aiwf_assets.cleaning.audit import OVERRIDE_TAG

    # the generator's empty and late files would be held back by the volume guard; the
    # benchmark times publishing every day (the guards are tested in tests/)
    result = job.execute_in_process(
        instance=instance, asset_selection=keys, tags={OVERRIDE_TAG: "*", **(tags or {})},
        partition_key=partition_key, raise_on_error=False,
    )
    if not result.success:
        failures = [e.step_key for e in result.all_events if e.is_step_failure]
        raise RuntimeError(f"run {result.run_id} failed in steps {failures}")
    return result


# ---------------------------------------------------------------------------- cases
def generate(home: str, scale: float, days: int, seed: int) -> dict:
    from aiwf_assets.generator import generate as generate_data

    start = time.perf_counter()
    generate_data(Path(home), seed=seed, days=days, scale=scale, faults=("all",))
    return {"seconds": time.perf_counter() - start}


def parse_once(landing: str) -> dict:
    """The limit: read every landing file once with the Polars/PyArrow readers, nothing else.

    JSON lines go through Polars' NDJSON reader on the lines that are JSON objects
    (malformed lines are injected faults and cannot be read by any reader).
    """
    import polars as pl
    import pyarrow as pa
    import pyarrow.parquet as pq

    start = time.perf_counter()
    rows = 0
    for path in sorted(Path(landing).glob("*/*")):
        data = path.read_bytes()
        if not data.strip():
            continue  # an empty delivery: nothing to read
        if path.suffix == ".jsonl":
            try:
                frame = pl.read_ndjson(data, infer_schema_length=None)
            except pl.exceptions.ComputeError:
                lines = [line for line in data.splitlines() if line.rstrip().endswith(b"}")]
                frame = pl.read_ndjson(b"\n".join(lines), infer_schema_length=None,
                                       ignore_errors=True)
            rows += frame.height
        elif path.suffix == ".csv":
            rows += pl.read_csv(data, infer_schema=False, truncate_ragged_lines=True).height
        elif path.suffix == ".parquet":
            rows += pq.read_table(pa.BufferReader(data)).num_rows
    return {"seconds": time.perf_counter() - start, "rows": rows}


def full_build(profile_json: str | None = None) -> dict:
    """Materialise the data layers in-process against a fresh instance, as `aiwf demo` does."""
    import dagster as dg

    from aiwf_assets.demo import landed_days, plan_runs, prepare_dagster_home
    from aiwf_assets.settings import get_settings

    prepare_dagster_home()
    defs = data_definitions()
    plan = plan_runs(defs)
    job = defs.resolve_implicit_global_asset_job_def()
    days = landed_days(get_settings().landing_dir)
    profiler = _start_profiler() if profile_json else None
    phases: dict[str, float] = {}
    results = []
    with dg.DagsterInstance.get() as instance:
        for phase, keys, tags in (
            ("reference", plan.before, {}),
            ("daily", plan.daily, _range_tags(days, _deferred(defs, plan.daily))),
            ("reference_after", plan.after, {}),
        ):
            start = time.perf_counter()
            if keys:
                results.append(_execute(job, instance, keys, tags))
            phases[phase] = time.perf_counter() - start
        if profiler:
            _stop_profiler(profiler, profile_json)
    return {
        "days": len(days), "phases": phases, "data_s": sum(phases.values()),
        **run_stats(results),
    }


def _range_tags(days: list[str], deferred: bool = False) -> dict[str, str]:
    """One run over the landed days; `deferred`: the assets record one materialisation per
    day with its own data version, as `aiwf demo`'s raw-and-cleaned phase does."""
    from aiwf_assets.day_versions import DEFER_ASSET_EVENTS_TAG
    from aiwf_assets.demo import PARTITION_RANGE_END, PARTITION_RANGE_START

    tags = {PARTITION_RANGE_START: days[0], PARTITION_RANGE_END: days[-1]}
    return {**tags, DEFER_ASSET_EVENTS_TAG: "true"} if deferred else tags


def _deferred(defs, keys) -> bool:
    """Whether every one of `keys` records its own per-day versions (the demo then runs them
    with deferred asset events)."""
    from aiwf_assets.day_versions import RECORDS_DAY_VERSIONS

    graph = defs.resolve_asset_graph()
    return bool(keys) and all(graph.get(k).metadata.get(RECORDS_DAY_VERSIONS) for k in keys)


def downstream_build() -> dict:
    """Every layer after cleaned (dbt marts, features, models, serving, monitoring) on a
    home whose data layers are built, in the demo's run order, in process.

    Seconds per asset group come from the steps' durations; failed steps are
    recorded (step: exception: first line), not raised.
    """
    import dagster as dg

    from aiwf_assets.definitions import defs as location_defs
    from aiwf_assets.demo import landed_days, plan_runs
    from aiwf_assets.settings import get_settings

    graph = location_defs.resolve_asset_graph()
    data_keys = set(data_definitions().resolve_asset_graph().materializable_asset_keys)
    plan = plan_runs(location_defs)
    job = location_defs.resolve_implicit_global_asset_job_def()
    days = landed_days(get_settings().landing_dir)
    probe: dict = {"assets": [], "failed_steps": [], "seconds": 0.0,
                   "group_s": defaultdict(float)}
    with dg.DagsterInstance.get() as instance:
        for keys, tags in ((plan.before, {}), (plan.daily, _range_tags(days)),
                           (plan.after, {})):
            keys = [k for k in keys if k not in data_keys]
            if not keys:
                continue
            probe["assets"] += [k.to_user_string() for k in keys]
            start = time.perf_counter()
            result = job.execute_in_process(
                instance=instance, asset_selection=keys, tags=tags, raise_on_error=False
            )
            probe["seconds"] += time.perf_counter() - start
            groups = step_groups(result, graph)
            for event in result.all_events:
                if event.event_type_value == "STEP_SUCCESS":
                    probe["group_s"][groups.get(event.step_key, "other")] += (
                        event.event_specific_data.duration_ms / 1e3
                    )
                if event.is_step_failure:
                    error = event.step_failure_data.error
                    cause = error.cause or error
                    lines = [line.strip() for line in cause.message.strip().splitlines()]
                    probe["failed_steps"].append(  # e.g. which blocking check failed
                        f"{event.step_key}: {cause.cls_name}: {' '.join(lines[:3])}"
                    )
    probe["group_s"] = dict(probe["group_s"])
    return probe


def step_groups(result, graph) -> dict[str, str]:
    """step key -> asset group of the assets it materialised (the first one's)."""
    groups: dict[str, str] = {}
    for event in result.get_asset_materialization_events():
        key = event.materialization.asset_key
        groups.setdefault(event.step_key, graph.get(key).group_name or "default")
    return groups


def multiprocess_build() -> dict:
    """The data layers with the multiprocess executor (a step per process)."""
    import dagster as dg

    from aiwf_assets.cleaning.audit import OVERRIDE_TAG
    from aiwf_assets.demo import landed_days, prepare_dagster_home
    from aiwf_assets.settings import get_settings

    prepare_dagster_home()
    days = landed_days(get_settings().landing_dir)
    results = []
    with dg.DagsterInstance.get() as instance:
        start = time.perf_counter()
        for job_fn, tags in (
            (multiprocess_reference_job, {}),
            # every data-layer daily asset records its own per-day versions, as in the demo
            (multiprocess_daily_job, _range_tags(days, deferred=True)),
        ):
            # as in the in-process build: every day published (the guards are tested apart)
            result = dg.execute_job(dg.reconstructable(job_fn), instance,
                                    tags={OVERRIDE_TAG: "*", **tags})
            if not result.success:
                raise RuntimeError(f"multiprocess run {result.run_id} failed")
            results.append(result)
        seconds = time.perf_counter() - start
    return {"data_s": seconds, "days": len(days)}


def _multiprocess_job(daily: bool):
    import dagster as dg

    from aiwf_assets.demo import plan_runs

    defs = data_definitions()
    plan = plan_runs(defs)
    name = "bench_daily" if daily else "bench_reference"
    job = dg.define_asset_job(
        name, selection=plan.daily if daily else [*plan.before, *plan.after],
        executor_def=dg.multiprocess_executor,
    )
    return dg.Definitions.merge(defs, dg.Definitions(jobs=[job])).resolve_job_def(name)


def multiprocess_reference_job():
    return _multiprocess_job(daily=False)


def multiprocess_daily_job():
    return _multiprocess_job(daily=True)


def after_build(change_days: list[str], repeat: int) -> dict:
    """Incremental and no-op updates on a home that has a full build, through automation.

    Landing is observed by the real observation sensor; requests come from
    `evaluate_automation_conditions` over the data layers with the automation
    policies applied; every requested partition is materialised until a tick
    requests nothing.
    """
    import dagster as dg

    from aiwf_assets.automation.policies import apply_automation_policies
    from aiwf_assets.automation.sensors import landing_observation_sensor
    from aiwf_assets.ingest.spec import declared_sources
    from aiwf_assets.partitions import partitions_for
    from aiwf_assets.settings import get_settings

    settings = get_settings()
    defs = apply_automation_policies(data_definitions(), settings)
    job = defs.resolve_implicit_global_asset_job_def()
    sensor = landing_observation_sensor(
        settings, declared_sources(settings.sources_path), partitions_for(settings)
    )
    landing_resource = defs.resources["landing"]
    cursors: dict[str, object] = {"sensor": None, "tick": None}

    with dg.DagsterInstance.get() as instance:

        def observe() -> int:
            with dg.build_sensor_context(  # entered: the landing resource nests S3's
                instance=instance, cursor=cursors["sensor"],
                resources={"landing": landing_resource},
            ) as context:
                result = sensor(context)
            for event in result.asset_events:
                instance.report_runless_asset_event(event)
            cursors["sensor"] = result.cursor
            return len(result.asset_events)

        def tick() -> dict[str | None, list]:
            result = dg.evaluate_automation_conditions(
                defs=defs, instance=instance, cursor=cursors["tick"]
            )
            cursors["tick"] = result.cursor
            requested: dict[str | None, list] = defaultdict(list)
            for key in defs.resolve_asset_graph().materializable_asset_keys:
                if result.get_num_requested(key):
                    node_partitioned = defs.resolve_asset_graph().get(key).partitions_def
                    parts = result.get_requested_partitions(key) if node_partitioned else [None]
                    for partition in parts:
                        requested[partition].append(key)
            return requested

        def settle() -> dict:
            """Observe, then tick and run what is requested until nothing is."""
            start = time.perf_counter()
            observations = observe()
            observe_s = time.perf_counter() - start
            runs, asset_partitions, ticks = 0, [], 0
            while True:
                requested = tick()
                ticks += 1
                if not requested:
                    break
                for partition, keys in sorted(requested.items(), key=lambda kv: kv[0] or ""):
                    _execute(job, instance, keys, partition_key=partition)
                    runs += 1
                    asset_partitions += [f"{k.to_user_string()}[{partition}]" for k in keys]
                if ticks > 10:
                    raise RuntimeError("automation did not settle in 10 ticks")
            return {
                "seconds": time.perf_counter() - start, "observe_s": observe_s,
                "observations": observations, "ticks": ticks, "runs": runs,
                "asset_partitions": asset_partitions,
            }

        deliver = _deliver_to(landing_resource, settings.env)
        prime = settle()
        incremental = []
        for day in change_days[:repeat]:
            path = settings.landing_dir / "pos_transactions" / f"{day}.csv"
            change_one_file(path)
            deliver(settings.landing_dir, [path])
            incremental.append({"day": day, **settle()})
        noop = []
        for _ in range(repeat):
            files = redeliver_identical(settings.landing_dir)
            deliver(settings.landing_dir, _landed_files(settings.landing_dir))
            noop.append({"files": files, **settle()})
        untouched = [settle() for _ in range(repeat)]
    return {"prime": prime, "incremental": incremental, "noop": noop, "untouched": untouched}


def _landed_files(landing: Path) -> list[Path]:
    return sorted(p for p in landing.glob("*/*") if p.is_file())


def _deliver_to(landing_resource, env: str):
    """prod: a function that uploads local landing files to the landing zone on S3 (the same
    relative paths); local: the files already are the landing zone, nothing to do."""
    if env != "prod":
        return lambda landing, paths: None
    fs, root = landing_resource.fs_and_root()

    def deliver(landing: Path, paths: list[Path]) -> None:
        for path in paths:
            with fs.open_output_stream(f"{root}/{path.relative_to(landing).as_posix()}") as out:
                out.write(path.read_bytes())

    return deliver


def upload_landing() -> dict:
    """prod: every file of the home's landing zone uploaded to the S3 landing zone (the
    delivery, timed apart from the build)."""
    from aiwf_assets.settings import get_settings

    settings = get_settings()
    if settings.env != "prod":
        raise RuntimeError("upload_landing runs with AIWF_ENV=prod")
    files = _landed_files(settings.landing_dir)
    start = time.perf_counter()
    _deliver_to(data_definitions().resources["landing"], "prod")(settings.landing_dir, files)
    return {"seconds": time.perf_counter() - start, "files": len(files),
            "bytes": sum(p.stat().st_size for p in files)}


LOAD_ROWS = 1_000_000  # the loader comparison writes whole days up to about this many rows


def warehouse_load(table: str, repeat: int) -> dict:
    """prod: days of one cleaned table of the full build (from the first, up to LOAD_ROWS
    rows) loaded again into a scratch table of the Postgres warehouse by each loader (COPY
    of Arrow-written CSV; ADBC's Arrow-native ingest), alternating, `repeat` times each:
    those days as one table (`replace_table`), then their largest day (`replace_partitions`,
    the size of a daily write); seconds per loader."""
    import pyarrow.compute as pc

    from aiwf_assets.io.postgres import LOADERS, PostgresWarehouse
    from aiwf_assets.io.warehouse import PARTITION_COLUMN
    from aiwf_assets.settings import get_settings

    settings = get_settings()
    source = PostgresWarehouse(settings.warehouse_dsn or "", settings.warehouse_schema_suffix)
    counts = source.query(
        f"SELECT {PARTITION_COLUMN} AS day, count(*) AS n FROM {table} GROUP BY 1 ORDER BY 1"
    )
    days, rows, biggest = [], 0, (0, None)
    for day, n in counts.iter_rows():
        days.append(day)
        rows += n
        biggest = max(biggest, (n, day), key=lambda pair: pair[0])
        if rows >= LOAD_ROWS:
            break
    biggest = biggest[1]
    listed = ", ".join(f"DATE '{d.isoformat()}'" for d in days)
    frame = source.read_arrow(f"SELECT * FROM {table} WHERE {PARTITION_COLUMN} IN ({listed})")
    day = frame.filter(pc.equal(frame[PARTITION_COLUMN], biggest))
    seconds: dict[str, list[float]] = defaultdict(list)
    day_seconds: dict[str, list[float]] = defaultdict(list)
    for _ in range(repeat):
        for loader in LOADERS:
            warehouse = PostgresWarehouse(source.dsn, source.schema_suffix, loader=loader)
            scratch = f"bench.load_{loader}"
            start = time.perf_counter()
            warehouse.replace_table(scratch, frame)
            seconds[loader].append(time.perf_counter() - start)
            start = time.perf_counter()
            warehouse.replace_partitions(scratch, day, [biggest])
            day_seconds[loader].append(time.perf_counter() - start)
            loaded = warehouse.query(f"SELECT count(*) AS n FROM {scratch}")["n"][0]
            if loaded != frame.num_rows:
                raise RuntimeError(f"{loader} left {loaded} rows, not {frame.num_rows}")
    source.drop_tables([f"bench.load_{loader}" for loader in LOADERS])
    return {"table": table, "days": len(days), "rows": frame.num_rows, "bytes": frame.nbytes,
            "seconds": dict(seconds), "day_rows": day.num_rows,
            "day_seconds": dict(day_seconds)}


def change_one_file(path: Path) -> None:
    """A corrected re-delivery: the same file without its last data row (a new inode)."""
    lines = path.read_bytes().splitlines(keepends=True)
    _replace(path, b"".join(lines[:-1]))


def redeliver_identical(landing: Path) -> int:
    """Every landed file written again with the same bytes (new inode and mtime)."""
    files = [p for p in landing.glob("*/*") if p.is_file()]
    for path in files:
        _replace(path, path.read_bytes())
    return len(files)


def _replace(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def common_recipe(landing: str, storage: str) -> dict:
    """The pandas + pickle recipe over the same landing files."""
    from benchmarks import common_recipe as recipe

    start = time.perf_counter()
    result = recipe.run(Path(landing), Path(storage), pii_key="bench-key")
    seconds = time.perf_counter() - start
    if not result.success:
        raise RuntimeError("the common recipe failed")
    rows = {
        name: len(result.output_for_node(node, name))
        for node, name in (("clean_orders", "order_lines"), ("clean_interactions",
                                                             "interactions"))
    }
    step_s = sum(
        e.event_specific_data.duration_ms / 1e3
        for e in result.all_events if e.event_type_value == "STEP_SUCCESS"
    )
    return {"seconds": seconds, "rows": rows, "step_s": step_s}


def _start_profiler():
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.005)
    profiler.start()
    return profiler


def _stop_profiler(profiler, json_path: str) -> None:
    """Self time by package and the top functions by self time, as JSON.

    A built-in (C) function's time counts for the package of the Python code that
    called it (`Connection.commit` under SQLAlchemy is the Dagster instance's SQLite).
    """
    from benchmarks.stats import package_of

    profiler.stop()
    root = profiler.last_session.root_frame()
    by_package: dict[str, float] = defaultdict(float)
    by_function: dict[str, float] = defaultdict(float)
    stack = [(root, root, root)]
    while stack:
        frame, parent, caller = stack.pop()
        self_time = frame.time - sum(child.time for child in frame.children)
        if _is_python(frame):
            caller = frame
        stack.extend((child, frame, caller) for child in frame.children)
        if frame.is_synthetic:  # pyinstrument keeps a function's own samples in a `[self]` child
            frame = parent
        if self_time <= 0:
            continue
        where = f"{Path(caller.file_path or '').name}:{caller.line_no}"
        by_package[package_of(caller.file_path or "")] += self_time
        name = frame.function if frame is caller else f"{frame.function} (from {caller.function}"
        by_function[f"{name} ({where})" if frame is caller else f"{name}, {where})"] += self_time
    top = sorted(by_function.items(), key=lambda kv: kv[1], reverse=True)[:15]
    Path(json_path).write_text(json.dumps({
        "total_s": root.time, "by_package": dict(by_package), "top_functions": top,
    }))


def _is_python(frame) -> bool:
    return bool(frame.file_path) and not frame.file_path.startswith("<")


CASES = {
    "generate": generate,
    "parse_once": parse_once,
    "full_build": full_build,
    "downstream_build": downstream_build,
    "multiprocess_build": multiprocess_build,
    "after_build": after_build,
    "common_recipe": common_recipe,
    "upload_landing": upload_landing,
    "warehouse_load": warehouse_load,
}


def main(argv: list[str]) -> int:
    case, kwargs, out = argv[1], json.loads(argv[2]), Path(argv[3])
    payload = CASES[case](**kwargs)
    payload["finished_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    out.write_text(json.dumps(payload, default=str))
    return 0


if __name__ == "__main__":
    code = main(sys.argv)
    sys.stdout.flush()
    sys.stderr.flush()
    # skip interpreter teardown: native thread pools (Polars/Arrow) occasionally abort in it
    os._exit(code)
