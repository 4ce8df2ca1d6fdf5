"""Kubernetes sizing for heavy work, and the executor choice.

In prod every run is a Kubernetes Job (deploy/dagster.yaml, `K8sRunLauncher`).
With `AIWF_EXECUTOR=k8s` each step of a run gets a pod of its own
(`k8s_job_executor`), sized by the run launcher's default resources unless the
asset's op carries a `dagster-k8s/config` tag:

- `HEAVY_TRAINING_TAGS` go on heavy assets as `op_tags`: they size that step's pod.
- `HEAVY_RUN_TAGS` go on jobs as `tags`: they size the run's own pod (the one
  that runs every step under the default executor) and carry `aiwf/heavy`,
  which the run queue admits one run at a time.

dagster_k8s is imported only when the k8s executor is chosen: the import costs
about a second, which every process loading the code location would pay.
"""

from __future__ import annotations

from typing import Any

import dagster as dg

from aiwf_assets.settings import Settings, SettingsError

# dagster_k8s.job.USER_DEFINED_K8S_CONFIG_KEY (a test keeps them equal)
K8S_CONFIG_TAG = "dagster-k8s/config"
# limited to one run at a time by tag_concurrency_limits in deploy/dagster.yaml
HEAVY_RUN_TAG = "aiwf/heavy"


def container_resources_tags(
    *, cpu: str, memory: str, cpu_limit: str, memory_limit: str
) -> dict[str, Any]:
    """`dagster-k8s/config` tags giving the container of a step (or run) its requests/limits."""
    return {
        K8S_CONFIG_TAG: {
            "container_config": {
                "resources": {
                    "requests": {"cpu": cpu, "memory": memory},
                    "limits": {"cpu": cpu_limit, "memory": memory_limit},
                }
            }
        }
    }


HEAVY_TRAINING_TAGS: dict[str, Any] = container_resources_tags(
    cpu="2", memory="6Gi", cpu_limit="4", memory_limit="8Gi"
)
HEAVY_RUN_TAGS: dict[str, Any] = {HEAVY_RUN_TAG: "true", **HEAVY_TRAINING_TAGS}


def executor_for(settings: Settings) -> dg.ExecutorDefinition:
    """The run executor for this environment.

    local: in-process. The DuckDB warehouse takes one writer at a time, so parallel steps
    would only queue on its lock, and one process pays Dagster's import once (measured 5x
    faster than multiprocess in benchmarks/RESULTS.md). prod: multiprocess inside the run's
    pod, or `k8s_job_executor` (a pod per step) when `AIWF_EXECUTOR=k8s`.
    """
    if settings.executor != "k8s":
        return dg.in_process_executor if settings.env == "local" else dg.multiprocess_executor
    if settings.env != "prod":
        raise SettingsError(
            "AIWF_EXECUTOR=k8s needs AIWF_ENV=prod: step pods share data through S3 and "
            "Postgres, and cannot see this machine's files"
        )
    from dagster_k8s import k8s_job_executor

    return k8s_job_executor
