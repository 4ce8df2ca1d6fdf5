"""The deployment files, checked without a cluster, Helm or Docker.

- deploy/k8s is rendered by `kubectl kustomize` (kustomize itself, as
  `kubectl apply -k` would), and every object is validated against the
  Kubernetes 1.31 schema (strict).
- The Job that dagster-k8s creates for one of our runs is built by dagster-k8s
  itself from deploy/dagster.yaml (its K8sRunLauncher, with the Kubernetes API
  replaced by a recorder), and validated the same way; so is a step's Job.
- Security, RBAC and network rules are asserted on the rendered objects; the
  Role is compared with the API calls the installed dagster-k8s makes.
- The Helm values have no chart schema to check against offline: their keys
  are checked against the chart's value names, their Kubernetes fragments
  against the Kubernetes schema, and their settings against deploy/dagster.yaml.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import jsonschema
import kubernetes
import kubernetes_validate
import pytest
import yaml
from dagster._config import process_config
from dagster._core.code_pointer import ModuleCodePointer
from dagster._core.errors import DagsterUserCodeUnreachableError
from dagster._core.launcher import LaunchRunContext
from dagster._core.origin import JobPythonOrigin, RepositoryPythonOrigin
from dagster._grpc.client import DagsterGrpcClient
from dagster._grpc.types import ListRepositoriesResponse
from dagster._serdes import deserialize_value
from dagster._utils.error import SerializableErrorInfo
from dagster_k8s import K8sRunLauncher
from dagster_k8s.container_context import K8sContainerContext
from dagster_k8s.job import (
    USER_DEFINED_K8S_CONFIG_KEY,
    construct_dagster_k8s_job,
    get_user_defined_k8s_config,
)
from kubernetes.utils import parse_quantity
from referencing import Registry, Resource

from aiwf_assets.k8s import (
    HEAVY_RUN_TAG,
    HEAVY_RUN_TAGS,
    HEAVY_TRAINING_TAGS,
    K8S_CONFIG_TAG,
    executor_for,
)
from aiwf_assets.settings import Settings, SettingsError, _read_env

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
K8S_BASE = DEPLOY / "k8s" / "base"
K8S_PROD = DEPLOY / "k8s" / "overlays" / "prod"
K8S_VERSION = "1.31"
PROD_NAMESPACE = "aiwf"
DAGSTER_HOME = "/opt/dagster/dagster_home"
CODE_SERVER_PORT = 4000
CODE_LOCATION_ATTRIBUTE = "defs"
NON_ROOT_UID = 10001

# What the Secrets (created by hand, docs/DEPLOY.md) must hold.
SECRET_KEYS = {
    "aiwf-dagster-secrets": {"DAGSTER_PG_PASSWORD", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"},
    "aiwf-app-secrets": {"AIWF_PII_KEY", "AIWF_WAREHOUSE_DSN"},
}
HELM_POSTGRES_SECRET = ("aiwf-dagster-postgresql", "postgresql-password")
# What the code location and its runs read besides Dagster's own settings.
APP_ENV = {
    "AIWF_ENV",
    "AIWF_EXECUTOR",
    "AIWF_HOME",
    "AIWF_S3_BUCKET",
    "AIWF_S3_ENDPOINT",
    "AIWF_SOURCES",
    "AIWF_PII_KEY",
    "AIWF_WAREHOUSE_DSN",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
}


# --------------------------------------------------------------------------------------
# Rendering: kustomize itself (`kubectl kustomize`, kubectl is part of these machines)
# --------------------------------------------------------------------------------------


def render_kustomization(directory: Path) -> list[dict]:
    """The objects `kubectl kustomize` renders from `directory`."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        raise RuntimeError("kubectl is not on PATH: install it (apt-get install kubectl)")
    out = subprocess.run(
        [kubectl, "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def find(objects: list[dict], kind: str, name: str) -> dict:
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    if len(matches) != 1:
        raise LookupError(f"expected one {kind}/{name}, found {len(matches)}")
    return matches[0]


def pod_templates(objects: list[dict]) -> Iterator[tuple[dict, dict]]:
    """(workload, pod spec) for every Deployment."""
    for obj in objects:
        if obj["kind"] == "Deployment":
            yield obj, obj["spec"]["template"]["spec"]


@pytest.fixture(scope="module")
def prod_objects() -> list[dict]:
    return render_kustomization(K8S_PROD)


@pytest.fixture(scope="module")
def base_objects() -> list[dict]:
    return render_kustomization(K8S_BASE)


@pytest.fixture(scope="module")
def deploy_instance() -> dict:
    return yaml.safe_load((DEPLOY / "dagster.yaml").read_text())


@pytest.fixture(scope="module")
def helm_values() -> dict:
    return yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text())


# --------------------------------------------------------------------------------------
# Kubernetes schema
# --------------------------------------------------------------------------------------


def validate_k8s(obj: dict) -> None:
    try:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        where = ".".join(str(p) for p in exc.path)
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        raise AssertionError(f"{name}: {where}: {exc.message}") from None


@functools.cache
def k8s_definitions() -> tuple[dict, Registry]:
    """kubernetes-validate's strict definitions for K8S_VERSION, and a registry resolving them."""
    schemas = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    (directory,) = schemas.glob(f"v{K8S_VERSION}.*-local-strict")
    definitions = json.loads((directory / "_definitions.json").read_text())
    return definitions, Resource.from_contents(definitions) @ Registry()


def validate_k8s_fragment(fragment: Any, definition: str) -> None:
    """Validate a piece of a manifest (e.g. a container's resources) against one definition."""
    definitions, registry = k8s_definitions()
    schema = {
        "$schema": definitions["$schema"],
        "$ref": f"{definitions['$id']}#/$defs/{definition}",
    }
    jsonschema.Draft202012Validator(schema, registry=registry).validate(fragment)


@pytest.mark.parametrize("render", ["base_objects", "prod_objects"])
def test_every_manifest_is_valid_kubernetes(render: str, request: pytest.FixtureRequest) -> None:
    objects = request.getfixturevalue(render)
    assert objects
    for obj in objects:
        validate_k8s(obj)


def test_the_validation_catches_a_broken_manifest(prod_objects: list[dict]) -> None:
    broken = copy.deepcopy(find(prod_objects, "Deployment", "aiwf-daemon"))
    broken["spec"]["template"]["spec"]["containers"][0]["securityContext"]["runAsNonRoot"] = "yes"
    with pytest.raises(AssertionError, match="runAsNonRoot"):
        validate_k8s(broken)
    with pytest.raises(jsonschema.ValidationError):
        validate_k8s_fragment(
            {"requests": {"cpu": ["1"]}}, "io.k8s.api.core.v1.ResourceRequirements"
        )


# --------------------------------------------------------------------------------------
# Pods: non-root, read-only, bounded
# --------------------------------------------------------------------------------------


def security_problems(pod: dict, where: str) -> list[str]:
    """What keeps a pod from the restricted Pod Security Standard, a read-only root and limits."""
    problems = []
    pod_security = pod.get("securityContext", {})
    for container in pod["containers"] + pod.get("initContainers", []):
        name = f"{where}/{container['name']}"
        security = container.get("securityContext", {})
        if not (security.get("runAsNonRoot") or pod_security.get("runAsNonRoot")):
            problems.append(f"{name}: may run as root")
        if security.get("runAsUser", pod_security.get("runAsUser")) in (None, 0):
            problems.append(f"{name}: no non-zero runAsUser")
        if security.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: privilege escalation not disabled")
        if security.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{name}: writable root filesystem")
        if security.get("capabilities", {}).get("drop") != ["ALL"]:
            problems.append(f"{name}: capabilities not all dropped")
        if security.get("privileged"):
            problems.append(f"{name}: privileged")
        seccomp = security.get("seccompProfile", pod_security.get("seccompProfile", {}))
        if seccomp.get("type") not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{name}: no seccomp profile")
        resources = container.get("resources", {})
        for kind in ("cpu", "memory"):
            request = resources.get("requests", {}).get(kind)
            limit = resources.get("limits", {}).get(kind)
            if request is None or limit is None:
                problems.append(f"{name}: {kind} request and limit not both set")
            elif parse_quantity(request) > parse_quantity(limit):
                problems.append(f"{name}: {kind} request {request} above limit {limit}")
        mounted = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
        empty_dirs = {v["name"] for v in pod.get("volumes", []) if "emptyDir" in v}
        for writable in ("/tmp", DAGSTER_HOME):
            if mounted.get(writable) not in empty_dirs:
                problems.append(f"{name}: {writable} is not an emptyDir")
    return problems


def test_every_pod_is_non_root_read_only_unprivileged_and_bounded(
    prod_objects: list[dict],
) -> None:
    workloads = {w["metadata"]["name"] for w, _ in pod_templates(prod_objects)}
    assert workloads == {"aiwf-webserver", "aiwf-daemon", "aiwf-code-server"}
    problems = [
        p
        for workload, pod in pod_templates(prod_objects)
        for p in security_problems(pod, workload["metadata"]["name"])
    ]
    assert not problems
    for _, pod in pod_templates(prod_objects):
        assert pod["securityContext"]["runAsUser"] == NON_ROOT_UID


def test_the_security_check_reports_what_it_should(prod_objects: list[dict]) -> None:
    pod = copy.deepcopy(find(prod_objects, "Deployment", "aiwf-webserver")["spec"]["template"])
    container = pod["spec"]["containers"][0]
    del container["securityContext"]["readOnlyRootFilesystem"]
    container["resources"]["requests"]["memory"] = "64Gi"
    container["volumeMounts"] = [m for m in container["volumeMounts"] if m["mountPath"] != "/tmp"]
    problems = security_problems(pod["spec"], "w")
    assert problems == [
        "w/webserver: writable root filesystem",
        "w/webserver: memory request 64Gi above limit 2Gi",
        "w/webserver: /tmp is not an emptyDir",
    ]


def test_overlay_sets_namespace_image_and_replicas(prod_objects: list[dict]) -> None:
    for obj in prod_objects:
        if obj["kind"] != "Namespace":
            assert obj["metadata"]["namespace"] == PROD_NAMESPACE, obj["metadata"]["name"]
    images = {c["image"] for _, pod in pod_templates(prod_objects) for c in pod["containers"]}
    assert images == {"aiwf:0.1.0"}
    env = find(prod_objects, "ConfigMap", "aiwf-env")["data"]
    assert env["DAGSTER_K8S_JOB_IMAGE"] == "aiwf:0.1.0"
    replicas = {
        w["metadata"]["name"]: w["spec"]["replicas"] for w, _ in pod_templates(prod_objects)
    }
    assert replicas == {"aiwf-webserver": 2, "aiwf-code-server": 2, "aiwf-daemon": 1}
    # Dagster runs one daemon: a rollout must not overlap two
    assert find(prod_objects, "Deployment", "aiwf-daemon")["spec"]["strategy"] == {
        "type": "Recreate"
    }
    assert not [o for o in prod_objects if o["kind"] == "Secret"]


# --------------------------------------------------------------------------------------
# Configuration: the instance, the workspace and every variable they read
# --------------------------------------------------------------------------------------


def env_references(config: Any) -> set[str]:
    """Names of the environment variables a Dagster config reads (`{env: NAME}`)."""
    if isinstance(config, dict):
        if set(config) == {"env"} and isinstance(config["env"], str):
            return {config["env"]}
        return set().union(*(env_references(v) for v in config.values()))
    if isinstance(config, list):
        return set().union(*(env_references(v) for v in config))
    return set()


def container_env(objects: list[dict], container: dict) -> set[str]:
    """Every variable a container gets: its env, and the keys of its ConfigMaps and Secrets."""
    names = {e["name"] for e in container.get("env", [])}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            names |= set(find(objects, "ConfigMap", source["configMapRef"]["name"])["data"])
        else:
            names |= SECRET_KEYS[source["secretRef"]["name"]]
    return names


def settings_variables() -> set[str]:
    """The AIWF_ variables settings.py reads (the one module that reads the environment)."""
    source = (REPO / "aiwf_assets" / "settings.py").read_text()
    return set(re.findall(r'"(AIWF_[A-Z0-9_]+)"', source))


def test_the_instance_config_map_is_deploy_dagster_yaml(prod_objects: list[dict]) -> None:
    data = find(prod_objects, "ConfigMap", "aiwf-dagster-instance")["data"]
    assert data["dagster.yaml"] == (DEPLOY / "dagster.yaml").read_text(), (
        "deploy/k8s/base/dagster.yaml must be a copy of deploy/dagster.yaml"
    )
    (server,) = yaml.safe_load(data["workspace.yaml"])["load_from"]
    service = find(prod_objects, "Service", "aiwf-code-server")
    assert server["grpc_server"]["host"] == service["metadata"]["name"]
    assert server["grpc_server"]["port"] == service["spec"]["ports"][0]["port"] == CODE_SERVER_PORT


def test_every_pod_gets_every_variable_it_reads(
    prod_objects: list[dict], deploy_instance: dict
) -> None:
    instance_env = env_references(deploy_instance)
    assert {"DAGSTER_PG_PASSWORD", "AIWF_S3_BUCKET", "DAGSTER_K8S_JOB_NAMESPACE"} <= instance_env
    needs = {
        "aiwf-webserver": instance_env,
        "aiwf-daemon": instance_env,
        "aiwf-code-server": instance_env | APP_ENV | {"DAGSTER_CURRENT_IMAGE"},
    }
    for workload, pod in pod_templates(prod_objects):
        (container,) = pod["containers"]
        missing = needs[workload["metadata"]["name"]] - container_env(prod_objects, container)
        assert not missing, f"{workload['metadata']['name']} lacks {sorted(missing)}"
    # runs and steps: the run launcher's ConfigMaps and Secrets, and its own env
    launcher = deploy_instance["run_launcher"]["config"]
    run_env = {e["name"] for e in launcher["run_k8s_config"]["container_config"]["env"]}
    for name in launcher["env_config_maps"]:
        run_env |= set(find(prod_objects, "ConfigMap", name)["data"])
    for name in launcher["env_secrets"]:
        run_env |= SECRET_KEYS[name]
    assert not (instance_env | APP_ENV) - run_env
    # and the AIWF_ names set are ones settings.py reads
    aiwf_names = {
        n for n in find(prod_objects, "ConfigMap", "aiwf-env")["data"] if n.startswith("AIWF_")
    }
    assert aiwf_names <= settings_variables()


def test_the_code_location_and_its_runs_mount_the_sources_config_map(
    prod_objects: list[dict], deploy_instance: dict, helm_values: dict
) -> None:
    """AIWF_SOURCES points at the aiwf-sources ConfigMap wherever definitions load: the code
    server, run pods and (inheriting the run launcher's volumes) step pods."""
    path = find(prod_objects, "ConfigMap", "aiwf-env")["data"]["AIWF_SOURCES"]
    assert find(prod_objects, "ConfigMap", "aiwf-sources")["data"] == {}
    (container,) = find(prod_objects, "Deployment", "aiwf-code-server")["spec"]["template"][
        "spec"
    ]["containers"]
    pod = find(prod_objects, "Deployment", "aiwf-code-server")["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if v.get("configMap", {}).get("name") == "aiwf-sources")
    mount = next(m for m in container["volumeMounts"] if m["name"] == volume["name"])
    assert mount["mountPath"] == path and mount["readOnly"] is True
    launcher = deploy_instance["run_launcher"]["config"]
    volume = next(v for v in launcher["volumes"] if "config_map" in v)
    assert volume["config_map"]["name"] == "aiwf-sources"
    assert {"name": volume["name"], "mount_path": path, "read_only": True} in launcher[
        "volume_mounts"
    ]
    code_location = helm_components(helm_values)["code location"]
    assert {"name": "AIWF_SOURCES", "value": path} in code_location["env"]
    assert {"name": "sources", "mountPath": path, "readOnly": True} in code_location[
        "volumeMounts"
    ]


def test_no_secret_lives_in_a_config_map(prod_objects: list[dict]) -> None:
    secret_names = set().union(*SECRET_KEYS.values())
    for obj in prod_objects:
        if obj["kind"] == "ConfigMap":
            assert not secret_names & set(obj["data"]), obj["metadata"]["name"]
            assert not [k for k in obj["data"] if re.search("PASSWORD|SECRET|TOKEN|_KEY$", k)]


def test_deploy_doc_names_every_secret_and_key() -> None:
    doc = (REPO / "docs" / "DEPLOY.md").read_text()
    for secret, keys in {**SECRET_KEYS, HELM_POSTGRES_SECRET[0]: {HELM_POSTGRES_SECRET[1]}}.items():
        assert secret in doc
        for key in keys:
            assert key in doc, f"docs/DEPLOY.md does not mention {key} of {secret}"


# --------------------------------------------------------------------------------------
# RBAC: exactly what dagster-k8s calls
# --------------------------------------------------------------------------------------


def dagster_k8s_api_permissions() -> set[tuple[str, str, str]]:
    """(apiGroup, resource, verb) for each Kubernetes call in the launcher, executor and client.

    Read from the installed dagster_k8s sources: `batch_api.<verb>_namespaced_<kind>[_sub]`
    and `core_api.<...>` calls. The Pipes client is not used by aiwf and is left out.
    """
    import dagster_k8s

    package = Path(dagster_k8s.__file__).parent
    calls = set()
    for module in ("client.py", "launcher.py", "executor.py"):
        source = (package / module).read_text()
        assert "Watch(" not in source, f"{module} now watches: add the watch verb"
        calls |= set(re.findall(r"\b(batch|core)_api\.(\w+)\(", source))
    permissions = set()
    for api, method in calls:
        match = re.fullmatch(
            r"(create|read|list|delete|patch)_namespaced_([a-z]+?)(_status|_log)?", method
        )
        assert match, f"unrecognised Kubernetes call {api}_api.{method}"
        verb, kind, sub = match.groups()
        resource = f"{kind}s" + (f"/{sub[1:]}" if sub else "")
        rbac_verb = "get" if verb == "read" else verb
        permissions.add(("batch" if api == "batch" else "", resource, rbac_verb))
    return permissions


def role_permissions(role: dict) -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def test_the_role_grants_exactly_the_calls_dagster_k8s_makes(
    prod_objects: list[dict], deploy_instance: dict
) -> None:
    needed = dagster_k8s_api_permissions()
    assert ("batch", "jobs", "create") in needed and ("", "pods/log", "get") in needed
    roles = [o for o in prod_objects if o["kind"] in ("Role", "ClusterRole")]
    assert [r["kind"] for r in roles] == ["Role"]
    assert role_permissions(roles[0]) == needed

    (binding,) = [o for o in prod_objects if o["kind"] in ("RoleBinding", "ClusterRoleBinding")]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": roles[0]["metadata"]["name"],
    }
    launcher_account = deploy_instance["run_launcher"]["config"]["service_account_name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": launcher_account, "namespace": PROD_NAMESPACE}
    ]
    accounts = {
        w["metadata"]["name"]: p["serviceAccountName"] for w, p in pod_templates(prod_objects)
    }
    assert accounts == {
        "aiwf-webserver": launcher_account,
        "aiwf-daemon": launcher_account,
        "aiwf-code-server": "aiwf-code-server",
    }
    code_server_account = find(prod_objects, "ServiceAccount", "aiwf-code-server")
    assert code_server_account["automountServiceAccountToken"] is False


# --------------------------------------------------------------------------------------
# The Jobs dagster-k8s builds for our runs and steps
# --------------------------------------------------------------------------------------


class JobRecorder:
    """Stands in for kubernetes' BatchV1Api: keeps the Jobs it is asked to create."""

    def __init__(self) -> None:
        self.created: list[tuple[str, Any]] = []

    def create_namespaced_job(self, body: Any, namespace: str, **_: Any) -> None:
        self.created.append((namespace, body))


@dataclass(frozen=True)
class BuiltJobs:
    run_job: dict  # the run worker's Job for a job tagged HEAVY_RUN_TAGS
    heavy_step_job: dict  # a step's Job for an asset with HEAVY_TRAINING_TAGS
    plain_step_job: dict  # a step's Job for an asset without tags
    namespace: str


def to_manifest(model: Any) -> dict:
    return kubernetes.client.ApiClient().sanitize_for_serialization(model)


def launcher_from_deploy(
    deploy_instance: dict, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, recorder: JobRecorder
) -> K8sRunLauncher:
    """deploy/dagster.yaml's K8sRunLauncher with prod-like env and a kubeconfig leading nowhere."""
    for name, value in {
        "DAGSTER_K8S_JOB_NAMESPACE": PROD_NAMESPACE,
        "DAGSTER_K8S_JOB_IMAGE": "aiwf:0.1.0",
    }.items():
        monkeypatch.setenv(name, value)
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "none", "cluster": {"server": "https://127.0.0.1:1"}}],
                "users": [{"name": "none", "user": {"token": "none"}}],
                "contexts": [{"name": "none", "context": {"cluster": "none", "user": "none"}}],
                "current-context": "none",
            }
        )
    )
    launcher_config = deploy_instance["run_launcher"]
    assert (launcher_config["module"], launcher_config["class"]) == (
        "dagster_k8s",
        "K8sRunLauncher",
    )
    processed = process_config(K8sRunLauncher.config_type(), launcher_config["config"])
    assert processed.success, processed.errors
    config = {**processed.value, "load_incluster_config": False, "kubeconfig_file": str(kubeconfig)}
    return K8sRunLauncher(**config, k8s_client_batch_api=recorder)


@pytest.fixture(scope="module")
def built_jobs(
    deploy_instance: dict, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BuiltJobs]:
    tmp_path = tmp_path_factory.mktemp("k8s_jobs")
    recorder = JobRecorder()
    with pytest.MonkeyPatch.context() as monkeypatch:
        launcher = launcher_from_deploy(deploy_instance, monkeypatch, tmp_path, recorder)

        @dg.asset(op_tags=HEAVY_TRAINING_TAGS)
        def heavy_model() -> None: ...

        @dg.asset
        def light_table() -> None: ...

        job = dg.define_asset_job("heavy_job", tags=HEAVY_RUN_TAGS).resolve(
            asset_graph=dg.Definitions(assets=[heavy_model, light_table]).resolve_asset_graph()
        )
        origin = JobPythonOrigin(
            job.name,
            RepositoryPythonOrigin(  # as the image's code server reports it
                executable_path="/usr/local/bin/python",
                code_pointer=ModuleCodePointer(
                    code_location_module(), CODE_LOCATION_ATTRIBUTE, "/opt/aiwf"
                ),
                container_image="aiwf:0.1.0",
                entry_point=["dagster"],
            ),
        )
        (tmp_path / "instance").mkdir()
        with dg.DagsterInstance.local_temp(str(tmp_path / "instance")) as instance:
            launcher.register_instance(instance)
            # submitting a job (UI, schedule, sensor) gives the run the job's tags
            run = instance.create_run_for_job(job, job_code_origin=origin, tags=job.run_tags)
            launcher.launch_run(LaunchRunContext(dagster_run=run, workspace=None))

            # a step's Job as the k8s executor builds it (K8sStepHandler._get_container_context)
            def step_job(asset: dg.AssetsDefinition) -> dict:
                context = K8sContainerContext.create_for_run(run, launcher, include_run_tags=False)
                context = context.merge(
                    K8sContainerContext(run_k8s_config=get_user_defined_k8s_config(asset.op.tags))
                )
                job_config = context.get_k8s_job_config(None, launcher)  # DAGSTER_K8S_JOB_IMAGE
                return to_manifest(
                    construct_dagster_k8s_job(
                        job_config=job_config,
                        args=["dagster", "api", "execute_step"],
                        job_name=f"dagster-step-{asset.op.name.replace('_', '-')}",
                        component="step_worker",
                        user_defined_k8s_config=context.run_k8s_config,
                        labels={"dagster/op": asset.op.name},
                    )
                )

            ((namespace, run_job),) = recorder.created
            yield BuiltJobs(
                run_job=to_manifest(run_job),
                heavy_step_job=step_job(heavy_model),
                plain_step_job=step_job(light_table),
                namespace=namespace,
            )


def only_container(job: dict) -> dict:
    (container,) = job["spec"]["template"]["spec"]["containers"]
    return container


def heavy_resources() -> dict:
    return HEAVY_TRAINING_TAGS[K8S_CONFIG_TAG]["container_config"]["resources"]


def test_the_run_job_is_valid_and_carries_our_settings(
    built_jobs: BuiltJobs, deploy_instance: dict
) -> None:
    job = built_jobs.run_job
    validate_k8s(job)
    assert built_jobs.namespace == PROD_NAMESPACE
    pod = job["spec"]["template"]["spec"]
    container = only_container(job)
    assert pod["serviceAccountName"] == "aiwf-dagster"
    assert container["image"] == "aiwf:0.1.0"  # the code server's image
    assert container["args"][:3] == ["dagster", "api", "execute_run"]
    assert container["resources"] == heavy_resources()  # HEAVY_RUN_TAGS size the run pod
    assert {s["secretRef"]["name"] for s in container["envFrom"] if "secretRef" in s} == set(
        SECRET_KEYS
    )
    assert {"configMapRef": {"name": "aiwf-env"}} in container["envFrom"]
    namespace_env = next(e for e in container["env"] if e["name"] == "DAGSTER_K8S_JOB_NAMESPACE")
    assert namespace_env["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert {"name": "DAGSTER_HOME", "value": DAGSTER_HOME} in container["env"]
    assert not security_problems(pod, "run")


@pytest.mark.parametrize("which", ["heavy_step_job", "plain_step_job"])
def test_step_jobs_are_valid_and_sized_by_their_tags(
    built_jobs: BuiltJobs, deploy_instance: dict, which: str
) -> None:
    job = getattr(built_jobs, which)
    validate_k8s(job)
    assert not security_problems(job["spec"]["template"]["spec"], which)
    expected = (
        heavy_resources()
        if which == "heavy_step_job"
        else deploy_instance["run_launcher"]["config"]["resources"]
    )
    assert only_container(job)["resources"] == expected
    assert only_container(job)["image"] == "aiwf:0.1.0"


# --------------------------------------------------------------------------------------
# Network: who may talk to whom
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Peer:
    labels: dict | None  # None: an address outside the cluster
    same_namespace: bool = True


OUTSIDE = Peer(labels=None)
KUBE_DNS = Peer(labels={"k8s-app": "kube-dns"}, same_namespace=False)


def selects(selector: dict, labels: dict) -> bool:
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values")
        present = key in labels
        if not {
            "In": present and labels[key] in values,
            "NotIn": not present or labels[key] not in values,
            "Exists": present,
            "DoesNotExist": not present,
        }[operator]:
            return False
    return True


def peer_matches(peers: list[dict] | None, peer: Peer) -> bool:
    if peers is None:
        return True
    for rule in peers:
        if "ipBlock" in rule:
            if peer.labels is None:
                return True
            continue
        if peer.labels is None:
            continue
        if "namespaceSelector" in rule:
            if rule["namespaceSelector"] != {} and not peer.same_namespace:
                raise ValueError("only namespaceSelector {} is modelled")
        elif not peer.same_namespace:
            continue
        if selects(rule.get("podSelector", {}), peer.labels):
            return True
    return False


def port_matches(ports: list[dict] | None, port: int, protocol: str) -> bool:
    if ports is None:
        return True
    return any(p.get("port") == port and p.get("protocol", "TCP") == protocol for p in ports)


def allowed(
    policies: list[dict], direction: str, pod: dict, peer: Peer, port: int, protocol: str = "TCP"
) -> bool:
    """Whether NetworkPolicies let `pod` (labels) receive from / send to `peer` on `port`."""
    rules_key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    governing = [
        p["spec"]
        for p in policies
        if direction in p["spec"]["policyTypes"] and selects(p["spec"]["podSelector"], pod)
    ]
    if not governing:
        return True
    return any(
        port_matches(rule.get("ports"), port, protocol) and peer_matches(rule.get(peers_key), peer)
        for spec in governing
        for rule in spec.get(rules_key, [])
    )


def test_network_policies_allow_exactly_the_needed_connections(
    prod_objects: list[dict], built_jobs: BuiltJobs
) -> None:
    policies = [o for o in prod_objects if o["kind"] == "NetworkPolicy"]
    pods = {
        w["metadata"]["name"].removeprefix("aiwf-"): w["spec"]["template"]["metadata"]["labels"]
        for w, _ in pod_templates(prod_objects)
    }
    pods["run_worker"] = built_jobs.run_job["spec"]["template"]["metadata"]["labels"]
    pods["step_worker"] = built_jobs.heavy_step_job["spec"]["template"]["metadata"]["labels"]
    assert set(pods) == {"webserver", "daemon", "code-server", "run_worker", "step_worker"}

    def ingress(to: str, peer: Peer, port: int) -> bool:
        return allowed(policies, "Ingress", pods[to], peer, port)

    def egress(source: str, peer: Peer, port: int, protocol: str = "TCP") -> bool:
        return allowed(policies, "Egress", pods[source], peer, port, protocol)

    def pod(name: str) -> Peer:
        return Peer(labels=pods[name])

    # the code location: gRPC from the webserver and the daemon only
    assert ingress("code-server", pod("webserver"), CODE_SERVER_PORT)
    assert ingress("code-server", pod("daemon"), CODE_SERVER_PORT)
    assert not ingress("code-server", pod("run_worker"), CODE_SERVER_PORT)
    assert not ingress("code-server", OUTSIDE, CODE_SERVER_PORT)
    assert not ingress("code-server", pod("webserver"), 3000)
    assert egress("webserver", pod("code-server"), CODE_SERVER_PORT)
    assert egress("daemon", pod("code-server"), CODE_SERVER_PORT)
    assert not egress("run_worker", pod("code-server"), CODE_SERVER_PORT)
    # the UI from anywhere, on its port only; nothing else accepts connections
    assert ingress("webserver", OUTSIDE, 3000)
    assert not ingress("webserver", OUTSIDE, 80)
    for name in ("daemon", "run_worker", "step_worker"):
        assert not ingress(name, OUTSIDE, 3000) and not ingress(name, pod("webserver"), 4000)
    # everyone: DNS, Postgres, S3 over HTTPS, and nothing else outside
    for name in pods:
        assert egress(name, KUBE_DNS, 53, "UDP") and egress(name, KUBE_DNS, 53)
        assert egress(name, OUTSIDE, 5432) and egress(name, OUTSIDE, 443)
        assert not egress(name, OUTSIDE, 22) and not egress(name, OUTSIDE, 80)
    # the Kubernetes API (6443) for those that launch or stop Jobs, not the code location
    for name in ("webserver", "daemon", "run_worker", "step_worker"):
        assert egress(name, OUTSIDE, 6443)
    assert not egress("code-server", OUTSIDE, 6443)


# --------------------------------------------------------------------------------------
# aiwf_assets/k8s.py: the tags and the executor choice
# --------------------------------------------------------------------------------------


def test_tags_survive_dagster_and_dagster_k8s_parsing(deploy_instance: dict) -> None:
    assert K8S_CONFIG_TAG == USER_DEFINED_K8S_CONFIG_KEY

    @dg.asset(op_tags=HEAVY_TRAINING_TAGS)
    def trained() -> None: ...

    parsed = get_user_defined_k8s_config(trained.op.tags)
    assert parsed.container_config["resources"] == heavy_resources()
    resources = heavy_resources()
    for kind in ("cpu", "memory"):
        assert parse_quantity(resources["requests"][kind]) <= parse_quantity(
            resources["limits"][kind]
        )
    limits = deploy_instance["run_coordinator"]["config"]["tag_concurrency_limits"]
    assert {"key": HEAVY_RUN_TAG, "limit": 1} in limits
    assert HEAVY_RUN_TAGS[HEAVY_RUN_TAG] == "true"


def test_the_executor_follows_aiwf_executor(tmp_path: Path) -> None:
    from dagster_k8s import k8s_job_executor

    prod = _read_env({"AIWF_ENV": "prod", "AIWF_EXECUTOR": "k8s", "AIWF_HOME": str(tmp_path)})
    assert prod.executor == "k8s"
    assert executor_for(prod) is k8s_job_executor
    prod_default = _read_env({"AIWF_ENV": "prod", "AIWF_HOME": str(tmp_path)})
    assert executor_for(prod_default) is dg.multiprocess_executor
    local = _read_env({"AIWF_HOME": str(tmp_path)})
    assert local.executor == "default"
    assert executor_for(local) is dg.in_process_executor
    with pytest.raises(SettingsError, match="AIWF_ENV=prod"):
        executor_for(Settings(env="local", home=tmp_path, executor="k8s"))
    with pytest.raises(SettingsError, match="AIWF_EXECUTOR"):
        _read_env({"AIWF_EXECUTOR": "celery", "AIWF_HOME": str(tmp_path)})


# --------------------------------------------------------------------------------------
# The image
# --------------------------------------------------------------------------------------


def dockerfile_instructions() -> dict[str, list[str]]:
    """deploy/Dockerfile's instructions: keyword -> the arguments of each, in order."""
    joined = re.sub(r"\\\n", " ", (DEPLOY / "Dockerfile").read_text())
    instructions: dict[str, list[str]] = {}
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.setdefault(keyword.upper(), []).append(rest.strip())
    return instructions


def code_location_module() -> str:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    return pyproject["tool"]["dagster"]["module_name"]


def test_the_dockerfile_builds_a_non_root_code_server_without_secrets() -> None:
    values = dockerfile_instructions()
    (base,) = values["FROM"]
    assert re.fullmatch(r"python:3\.11-slim(-\w+)?", base)
    assert values["USER"][-1] == f"{NON_ROOT_UID}:{NON_ROOT_UID}"
    assert values["EXPOSE"] == [str(CODE_SERVER_PORT)]
    # run and step pods get `args` only, so the ENTRYPOINT may not add a command
    assert json.loads(values["ENTRYPOINT"][-1]) == ["/usr/bin/tini", "--"]
    assert json.loads(values["CMD"][-1]) == [
        "dagster", "code-server", "start", "-h", "0.0.0.0",
        "-p", str(CODE_SERVER_PORT), "-m", code_location_module(), "-a", CODE_LOCATION_ATTRIBUTE,
    ]  # fmt: skip
    run = " ".join(values["RUN"])
    assert "dagster-dbt project prepare-and-package --file aiwf_assets/marts/prepare.py" in run
    assert "pip install --no-cache-dir -c requirements.lock -e ." in run  # the locked versions
    env_names = " ".join(values.get("ENV", []) + values.get("ARG", []))
    assert not re.search(r"PASSWORD|SECRET|TOKEN|PII|DSN|AWS_", env_names)
    assert "DAGSTER_HOME=/opt/dagster/dagster_home" in env_names


def build_step(marker: str) -> tuple[dict[str, str], list[str]]:
    """The environment and command of the Dockerfile's RUN step mentioning `marker`."""
    for run in dockerfile_instructions()["RUN"]:
        for step in run.split("&&"):
            if marker in step:
                words = shlex.split(step)
                env = {}
                while re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
                    name, _, value = words.pop(0).partition("=")
                    env[name] = value
                return env, words
    raise LookupError(f"no RUN step in deploy/Dockerfile mentions {marker!r}")


@dataclass(frozen=True)
class ImageTree:
    """/opt/aiwf as the image build leaves it, made here from the build context."""

    workdir: Path
    dbt_step: subprocess.CompletedProcess

    @property
    def pythonpath(self) -> str:
        return str(self.workdir)  # what `pip install -e .` gives every process in the image


@pytest.fixture(scope="module")
def image_tree(tmp_path_factory: pytest.TempPathFactory) -> ImageTree:
    """Copy the build context's files and run the Dockerfile's dbt step as `docker build` would:
    from the image's working directory, with nothing but the step's own environment."""
    root = tmp_path_factory.mktemp("image")
    workdir = root / "opt-aiwf"
    workdir.mkdir()
    shutil.copy(REPO / "pyproject.toml", workdir)
    build_outputs = shutil.ignore_patterns("__pycache__", "target", "logs", "dbt_packages")
    for tree in ("aiwf_assets", "dbt_project"):
        shutil.copytree(REPO / tree, workdir / tree, ignore=build_outputs)
    env, command = build_step("prepare-and-package")
    step_env = {
        **env,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}/usr/bin{os.pathsep}/bin",
        "HOME": str(root),
        "PYTHONPATH": str(workdir),
    }
    result = subprocess.run(
        command, cwd=workdir, env=step_env, capture_output=True, text=True, timeout=600
    )
    return ImageTree(workdir=workdir, dbt_step=result)


def test_the_image_build_prepares_the_dbt_manifest_for_postgres(image_tree: ImageTree) -> None:
    env, _ = build_step("prepare-and-package")
    assert not re.search(r"PASSWORD|SECRET|TOKEN|PII|DSN", " ".join(env))
    step = image_tree.dbt_step
    assert step.returncode == 0, step.stdout[-4000:] + step.stderr[-4000:]
    target = image_tree.workdir / "dbt_project" / "target"
    manifest = json.loads((target / "manifest.json").read_text())
    assert manifest["metadata"]["adapter_type"] == "postgres"
    assert any(node.startswith("model.") for node in manifest["nodes"])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def on_port(command: list[str], port: int) -> list[str]:
    """`command` listening on 127.0.0.1:`port` instead of its own host and port."""
    swapped = {"-h": "127.0.0.1", "-p": str(port)}
    return [
        swapped.get(previous, arg)
        for previous, arg in zip(["", *command[:-1]], command, strict=True)
    ]


def test_the_images_command_serves_the_code_location_with_prod_settings(
    prod_objects: list[dict], image_tree: ImageTree, tmp_path: Path
) -> None:
    """The Dockerfile's CMD, run in the built tree with the overlay's environment, serves `defs`.

    It must load from the manifest the build prepared; the readiness probe's command
    must see the server; what the server reports as entry point and image is what
    run Jobs are started with.
    """
    manifest = image_tree.workdir / "dbt_project" / "target" / "manifest.json"
    built_manifest = manifest.read_bytes()
    port = free_port()
    command = on_port(json.loads(dockerfile_instructions()["CMD"][-1]), port)
    code_server = find(prod_objects, "Deployment", "aiwf-code-server")["spec"]["template"]["spec"]
    probe = on_port(code_server["containers"][0]["readinessProbe"]["exec"]["command"], port)
    env_data = find(prod_objects, "ConfigMap", "aiwf-env")["data"]
    mounted_sources = tmp_path / "etc-aiwf-sources"
    mounted_sources.mkdir()
    fake_secrets = {
        "DAGSTER_PG_PASSWORD": "unused",
        "AWS_ACCESS_KEY_ID": "unused",
        "AWS_SECRET_ACCESS_KEY": "unused",
        "AIWF_PII_KEY": "a" * 64,
        "AIWF_WAREHOUSE_DSN": "postgresql://aiwf@127.0.0.1:1/unused",
    }
    assert set(fake_secrets) == set().union(*SECRET_KEYS.values())
    env = {
        **os.environ,
        **env_data,
        **fake_secrets,
        "DAGSTER_CURRENT_IMAGE": env_data["DAGSTER_K8S_JOB_IMAGE"],
        "DAGSTER_HOME": str(tmp_path),
        "AIWF_HOME": str(tmp_path / "aiwf"),
        # the empty aiwf-sources ConfigMap: Kubernetes mounts an empty folder
        "AIWF_SOURCES": str(mounted_sources),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": image_tree.pythonpath,
    }
    log = tmp_path / "code-server.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            command, cwd=image_tree.workdir, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        response = wait_for_repositories(DagsterGrpcClient(port=port, host="127.0.0.1"), server)
        assert isinstance(response, ListRepositoriesResponse), f"{response}\n{log.read_text()}"
        assert [s.repository_name for s in response.repository_symbols] == ["__repository__"]
        assert response.entry_point == ["dagster"]
        assert response.container_image == env_data["DAGSTER_K8S_JOB_IMAGE"]
        assert subprocess.run(probe, env=env, capture_output=True, timeout=60).returncode == 0
        assert manifest.read_bytes() == built_manifest, "loading re-parsed the dbt project"
    finally:
        server.terminate()
        server.wait(timeout=30)


def wait_for_repositories(client: DagsterGrpcClient, server: subprocess.Popen) -> Any:
    """The server's ListRepositories answer once it has loaded (or failed to load) the code."""
    deadline = time.monotonic() + 120
    while True:
        assert server.poll() is None, "the code server exited"
        try:
            response = deserialize_value(client.list_repositories())
        except DagsterUserCodeUnreachableError:
            response = None
        loading = response is None or (
            isinstance(response, SerializableErrorInfo) and "loading" in response.message.lower()
        )
        if not loading or time.monotonic() > deadline:
            return response
        time.sleep(0.5)


def test_the_build_context_holds_what_the_dockerfile_copies_and_no_secrets() -> None:
    lines = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    ignore = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert ignore[0] == "**"  # an allow-list: what is not named stays out
    allowed_paths = {p.removeprefix("!").rstrip("/") for p in ignore if p.startswith("!")}
    copied = set()
    for arguments in dockerfile_instructions()["COPY"]:
        *sources, _ = arguments.split()
        copied |= {source.rstrip("/") for source in sources}
    assert copied == allowed_paths
    assert {"**/*.key", "**/.env", "**/*.duckdb"} <= set(ignore)


# --------------------------------------------------------------------------------------
# Helm values
# --------------------------------------------------------------------------------------

# Value names of the Dagster chart (helm/dagster: values.py and the subcharts' schema
# models in the dagster repository). The packaged values.schema.json is not available
# offline here, so keys outside these sets fail.
HELM_TOP_LEVEL = {
    "global", "nameOverride", "fullnameOverride", "rbacEnabled", "dagsterHome",
    "postgresqlSecretName", "imagePullSecrets", "dagsterWebserver", "dagster-user-deployments",
    "postgresql", "generatePostgresqlPasswordSecret", "generateCeleryConfigSecret",
    "rabbitmq", "redis", "flower", "ingress", "computeLogManager", "scheduler", "runLauncher",
    "pythonLogs", "dagsterDaemon", "busybox", "migrate", "telemetry", "serviceAccount",
    "retention", "additionalInstanceConfig", "extraManifests",
}  # fmt: skip
HELM_WEBSERVER = {
    "replicaCount", "image", "nameOverride", "pathPrefix", "service", "workspace", "env",
    "envConfigMaps", "envSecrets", "deploymentLabels", "labels", "nodeSelector", "affinity",
    "tolerations", "podSecurityContext", "securityContext", "resources", "readinessProbe",
    "livenessProbe", "startupProbe", "annotations", "enableReadOnly", "dbStatementTimeout",
    "dbPoolRecycle", "logLevel", "schedulerName", "volumeMounts", "volumes",
}  # fmt: skip
HELM_USER_DEPLOYMENT = {
    "name", "image", "dagsterApiGrpcArgs", "codeServerArgs", "includeConfigInLaunchedRuns",
    "port", "env", "envConfigMaps", "envSecrets", "annotations", "nodeSelector", "affinity",
    "tolerations", "podSecurityContext", "securityContext", "resources", "livenessProbe",
    "readinessProbe", "startupProbe", "labels", "volumeMounts", "volumes", "schedulerName",
    "initContainers", "sidecarContainers",
}  # fmt: skip
HELM_K8S_RUN_LAUNCHER = {
    "image", "imagePullPolicy", "jobNamespace", "loadInclusterConfig", "kubeconfigFile",
    "envConfigMaps", "envSecrets", "envVars", "volumeMounts", "volumes", "labels",
    "failPodOnRunFailure", "resources", "schedulerName", "securityContext", "runK8sConfig",
}  # fmt: skip
HELM_DAEMON = {
    "enabled", "image", "runCoordinator", "heartbeatTolerance", "env", "envConfigMaps",
    "envSecrets", "deploymentLabels", "labels", "nodeSelector", "affinity", "tolerations",
    "podSecurityContext", "securityContext", "resources", "livenessProbe", "readinessProbe",
    "startupProbe", "annotations", "runMonitoring", "runRetries", "sensors", "schedules",
    "schedulerName", "volumeMounts", "volumes",
}  # fmt: skip
HELM_POSTGRESQL = {
    "image", "enabled", "postgresqlHost", "postgresqlUsername", "postgresqlPassword",
    "postgresqlDatabase", "postgresqlParams", "postgresqlScheme", "service",
}  # fmt: skip
HELM_S3_COMPUTE_LOGS = {
    "bucket", "localDir", "prefix", "useSsl", "verify", "verifyCertPath", "endpointUrl",
    "skipEmptyFiles", "uploadInterval", "uploadExtraArgs", "showUrlOnly", "region",
}  # fmt: skip
HELM_QUEUED_RUN_COORDINATOR = {
    "maxConcurrentRuns", "tagConcurrencyLimits", "dequeueIntervalSeconds",
    "dequeueNumWorkers", "dequeueUseThreads",
}  # fmt: skip

# Helm value -> Kubernetes definition it is rendered as
K8S_FRAGMENTS = {
    "podSecurityContext": "io.k8s.api.core.v1.PodSecurityContext",
    "securityContext": "io.k8s.api.core.v1.SecurityContext",
    "resources": "io.k8s.api.core.v1.ResourceRequirements",
    "readinessProbe": "io.k8s.api.core.v1.Probe",
}
K8S_FRAGMENT_LISTS = {
    "volumes": "io.k8s.api.core.v1.Volume",
    "volumeMounts": "io.k8s.api.core.v1.VolumeMount",
    "env": "io.k8s.api.core.v1.EnvVar",
    "envSecrets": "io.k8s.api.core.v1.SecretEnvSource",
    "envConfigMaps": "io.k8s.api.core.v1.ConfigMapEnvSource",
}


def helm_components(values: dict) -> dict[str, dict]:
    (code_location,) = values["dagster-user-deployments"]["deployments"]
    return {
        "webserver": values["dagsterWebserver"],
        "daemon": values["dagsterDaemon"],
        "code location": code_location,
        "run launcher": values["runLauncher"]["config"]["k8sRunLauncher"],
    }


def snake_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {re.sub(r"(?<!^)(?=[A-Z])", "_", k).lower(): snake_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [snake_keys(v) for v in value]
    return value


def test_helm_values_use_only_the_charts_value_names(helm_values: dict) -> None:
    components = helm_components(helm_values)
    checks = {
        "top level": (set(helm_values), HELM_TOP_LEVEL),
        "dagsterWebserver": (set(components["webserver"]), HELM_WEBSERVER),
        "dagsterDaemon": (set(components["daemon"]), HELM_DAEMON),
        "user deployment": (set(components["code location"]), HELM_USER_DEPLOYMENT),
        "k8sRunLauncher": (set(components["run launcher"]), HELM_K8S_RUN_LAUNCHER),
        "postgresql": (set(helm_values["postgresql"]), HELM_POSTGRESQL),
        "s3ComputeLogManager": (
            set(helm_values["computeLogManager"]["config"]["s3ComputeLogManager"]),
            HELM_S3_COMPUTE_LOGS,
        ),
        "queuedRunCoordinator": (
            set(helm_values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]),
            HELM_QUEUED_RUN_COORDINATOR,
        ),
    }
    unknown = {
        where: sorted(used - known) for where, (used, known) in checks.items() if used - known
    }
    assert not unknown


def test_helm_kubernetes_fragments_are_valid(helm_values: dict) -> None:
    checked = 0
    for component in helm_components(helm_values).values():
        for key, definition in K8S_FRAGMENTS.items():
            if key in component:
                fragment = {k: v for k, v in component[key].items() if k != "enabled"}
                validate_k8s_fragment(fragment, definition)
                checked += 1
        for key, definition in K8S_FRAGMENT_LISTS.items():
            for item in component.get(key, []):
                validate_k8s_fragment(item, definition)
                checked += 1
        pod_spec = component.get("runK8sConfig", {}).get("podSpecConfig", {})
        if pod_spec:
            validate_k8s_fragment(pod_spec["securityContext"], K8S_FRAGMENTS["podSecurityContext"])
            checked += 1
    assert checked >= 30


def test_helm_values_deploy_what_the_kustomize_deployment_does(
    helm_values: dict, deploy_instance: dict, prod_objects: list[dict]
) -> None:
    components = helm_components(helm_values)
    launcher = deploy_instance["run_launcher"]["config"]
    helm_launcher = components["run launcher"]
    env = find(prod_objects, "ConfigMap", "aiwf-env")["data"]
    code_location = components["code location"]
    code_env = {e["name"]: e["value"] for e in code_location["env"]}

    # the same image, code location, port and settings
    for name in ("webserver", "daemon", "code location"):
        image = components[name]["image"]
        assert f"{image['repository']}:{image['tag']}" == env["DAGSTER_K8S_JOB_IMAGE"], name
    assert code_location["codeServerArgs"] == [
        "-m",
        code_location_module(),
        "-a",
        CODE_LOCATION_ATTRIBUTE,
    ]
    assert code_location["port"] == CODE_SERVER_PORT
    assert code_location["includeConfigInLaunchedRuns"] == {"enabled": True}
    aiwf_env = {name: value for name, value in env.items() if name.startswith("AIWF_")}
    assert {name: code_env.get(name) for name in aiwf_env} == aiwf_env
    assert {s["name"] for s in code_location["envSecrets"]} == set(SECRET_KEYS)

    # a read-only webserver next to the full one; external Postgres through psycopg2
    assert components["webserver"]["enableReadOnly"] is True
    postgres = helm_values["postgresql"]
    assert postgres["enabled"] is False and helm_values["generatePostgresqlPasswordSecret"] is False
    assert helm_values["global"]["postgresqlSecretName"] == HELM_POSTGRES_SECRET[0]
    assert postgres["postgresqlHost"] == env["DAGSTER_PG_HOST"]
    pg = deploy_instance["storage"]["postgres"]["postgres_db"]
    assert postgres["postgresqlScheme"] == pg["scheme"]

    # the same run pods
    assert helm_values["runLauncher"]["type"] == "K8sRunLauncher"
    assert helm_launcher["resources"] == launcher["resources"]
    assert snake_keys(helm_launcher["securityContext"]) == launcher["security_context"]
    assert (
        snake_keys(helm_launcher["runK8sConfig"]["podSpecConfig"]["securityContext"])
        == launcher["run_k8s_config"]["pod_spec_config"]["security_context"]
    )
    assert [s["name"] for s in helm_launcher["envSecrets"]] == launcher["env_secrets"]
    assert snake_keys(helm_launcher["volumes"]) == launcher["volumes"]
    assert snake_keys(helm_launcher["volumeMounts"]) == launcher["volume_mounts"]
    assert helm_launcher["labels"] == launcher["labels"]
    assert helm_launcher["failPodOnRunFailure"] is launcher["fail_pod_on_run_failure"]

    # the same queue and compute logs
    coordinator = helm_values["dagsterDaemon"]["runCoordinator"]
    assert coordinator["enabled"] and coordinator["type"] == "QueuedRunCoordinator"
    queue = coordinator["config"]["queuedRunCoordinator"]
    deploy_queue = deploy_instance["run_coordinator"]["config"]
    assert queue["maxConcurrentRuns"] == deploy_queue["max_concurrent_runs"]
    assert queue["tagConcurrencyLimits"] == deploy_queue["tag_concurrency_limits"]
    assert helm_values["dagsterDaemon"]["runMonitoring"] == {
        "enabled": True,
        "startTimeoutSeconds": deploy_instance["run_monitoring"]["start_timeout_seconds"],
    }
    logs = helm_values["computeLogManager"]
    assert logs["type"] == "S3ComputeLogManager"
    s3_logs = logs["config"]["s3ComputeLogManager"]
    assert s3_logs["bucket"] == env["AIWF_S3_BUCKET"]
    assert s3_logs["prefix"] == env["DAGSTER_COMPUTE_LOG_PREFIX"]
    assert s3_logs["endpointUrl"] == env["AIWF_S3_ENDPOINT"]
    deploy_logs = deploy_instance["compute_logs"]["config"]
    assert s3_logs["localDir"] == deploy_logs["local_dir"]
    assert helm_values["telemetry"] == deploy_instance["telemetry"] == {"enabled": False}

    # every pod of the chart non-root, read-only and bounded like ours
    for name in ("webserver", "daemon", "code location"):
        pod = {
            "securityContext": components[name]["podSecurityContext"],
            "volumes": components[name]["volumes"],
            "containers": [
                {
                    "name": name,
                    "securityContext": components[name]["securityContext"],
                    "resources": components[name]["resources"],
                    "volumeMounts": components[name]["volumeMounts"],
                }
            ],
        }
        assert not security_problems(pod, name)
