"""The deployment assets in deploy/: the Dockerfile and the Helm chart, checked without docker or a cluster.

Static checks always run. Where a ``helm`` binary is on PATH the chart is also linted and rendered
with several value sets; otherwise those tests are skipped with the reason shown.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from roboflow_distributed.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"
CHART = DEPLOY / "helm" / "roboflow"
TEMPLATES = CHART / "templates"
CODE_DIRS = sorted([*ROOT.glob("packages/*/src"), *ROOT.glob("apps/*/src")])

STORE = "etcd://etcd:2379"
# Object-store variables the chart may render (ConfigMap or Secret); each must be read by the code.
STORAGE_ENV = {
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_ENDPOINT_URL",
    "OSS_ACCESS_KEY_ID",
    "OSS_ACCESS_KEY_SECRET",
    "OSS_ENDPOINT",
    "OSS_REGION",
    "ROBOFLOW_ALLOWED_ENDPOINTS",
    "ROBOFLOW_BUFFER_MAX_BYTES",
}
TELEMETRY_ENV = {"ROBOFLOW_LOG_FORMAT", "OTEL_EXPORTER_OTLP_ENDPOINT"}
DASHBOARD = CHART / "files" / "dashboard.json"
ALERTS = CHART / "files" / "alerts.yaml"
_METRIC = re.compile(r"\broboflow_[a-z0-9_]+\b")
_ENV_LINE = re.compile(r"^\s+([A-Z][A-Z0-9_]+):", re.MULTILINE)
_SETTING = re.compile(r"\{\{-? with \$s\.(\w+) -?\}\}\s*\n\s+([A-Z][A-Z0-9_]+):")
_VALUES_PATH = re.compile(r"\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)")


def _values() -> dict[str, Any]:
    data = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _code_text() -> str:
    return "\n".join(p.read_text(encoding="utf-8") for d in CODE_DIRS for p in sorted(d.rglob("*.py")))


def _settings_map() -> dict[str, str]:
    """values.yaml key under ``settings`` -> environment variable, as the ConfigMap template maps them."""
    text = (TEMPLATES / "configmap.yaml").read_text(encoding="utf-8")
    return dict(_SETTING.findall(text))


def _field_of(env_name: str) -> str:
    return next(field for field, name in Settings.ENV.items() if name == env_name)


# --- chart metadata and values -------------------------------------------------------------------


def test_chart_metadata() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text(encoding="utf-8"))
    assert chart["apiVersion"] == "v2"
    assert chart["name"] == "roboflow"
    assert chart["type"] == "application"
    assert re.fullmatch(r"\d+\.\d+\.\d+", str(chart["version"]))
    assert chart["appVersion"]


def test_expected_templates_exist() -> None:
    names = {p.name for p in TEMPLATES.iterdir()}
    for name in (
        "_helpers.tpl",
        "worker-deployment.yaml",
        "control-deployment.yaml",
        "configmap.yaml",
        "secret.yaml",
        "serviceaccount.yaml",
        "pdb.yaml",
        "hpa.yaml",
        "podmonitor.yaml",
        "prometheusrule.yaml",
        "grafana-dashboard.yaml",
        "networkpolicy.yaml",
        "ui-deployment.yaml",
        "ui-service.yaml",
        "ui-secret.yaml",
        "ui-networkpolicy.yaml",
        "NOTES.txt",
    ):
        assert name in names


def test_every_values_path_used_by_the_templates_exists() -> None:
    values = _values()
    used: set[str] = set()
    for template in TEMPLATES.iterdir():
        used.update(_VALUES_PATH.findall(template.read_text(encoding="utf-8")))
    assert len(used) > 30, "the regex no longer finds the templates' .Values references"
    missing = []
    for path in sorted(used):
        node: Any = values
        for key in path.lstrip(".").split("."):
            if not isinstance(node, dict) or key not in node:
                missing.append(f".Values{path}")
                break
            node = node[key]
    assert not missing, f"referenced in templates but absent from values.yaml: {missing}"


def test_configmap_renders_every_setting_under_its_code_name() -> None:
    mapping = _settings_map()
    assert set(mapping) == set(_values()["settings"]), "settings in values.yaml and the ConfigMap differ"
    assert sorted(mapping.values()) == sorted(Settings.ENV.values())


def test_configmap_and_secret_names_are_read_by_the_code() -> None:
    code = _code_text()
    allowed = set(Settings.ENV.values()) | STORAGE_ENV | TELEMETRY_ENV | {"ROBOFLOW_STORE"}
    for template in ("configmap.yaml", "secret.yaml"):
        names = set(_ENV_LINE.findall((TEMPLATES / template).read_text(encoding="utf-8")))
        assert names, template
        assert names <= allowed, f"{template}: unexpected variables {sorted(names - allowed)}"
        unread = sorted(n for n in names if f'"{n}"' not in code)
        assert not unread, f"{template}: variables no code reads: {unread}"
    # the pod id and the store are read too
    assert '"POD_NAME"' in code
    assert '"ROBOFLOW_STORE"' in code


def test_pod_environment_names_are_read_by_the_code() -> None:
    helpers = (TEMPLATES / "_helpers.tpl").read_text(encoding="utf-8")
    names = set(re.findall(r"- name: ([A-Z][A-Z0-9_]+)", helpers))
    assert {"ROBOFLOW_ETCD_CA_PATH", "ROBOFLOW_ETCD_USER", "ROBOFLOW_ETCD_PASSWORD"} <= names
    code = _code_text()
    read_elsewhere = {"TMPDIR", "NVIDIA_DRIVER_CAPABILITIES"}  # by Python's tempfile, by the NVIDIA runtime
    unread = sorted(n for n in names - read_elsewhere if f'"{n}"' not in code)
    assert not unread, f"_helpers.tpl sets variables no code reads: {unread}"
    # the password comes from a Secret, never from values rendered in plain text
    password = helpers[helpers.index("name: ROBOFLOW_ETCD_PASSWORD") :]
    assert password.split("\n- name:")[0].count("secretKeyRef") == 1


def test_network_policy_admits_nothing_from_outside_and_reaches_only_store_and_storage() -> None:
    values = _values()["networkPolicy"]
    assert values["enabled"] is True and values["metricsFrom"] == [] and values["extraEgress"] == []
    assert 2379 in values["store"]["ports"] and 443 in values["objectStorage"]["ports"]
    text = (TEMPLATES / "networkpolicy.yaml").read_text(encoding="utf-8")
    assert "kind: NetworkPolicy" in text and "{{- if $np.enabled }}" in text
    # every pod of the release, both directions governed
    assert re.search(
        r"podSelector:\s*\n\s*matchLabels:\s*\n\s*\{\{- include \"roboflow.selectorLabels\"", text
    )
    assert re.search(r"policyTypes:\s*\n\s*- Ingress\s*\n\s*- Egress", text)
    # ingress: none by default; only metricsFrom, only to the health port (there is no UI Service)
    assert "ingress: []" in text
    ingress = text[text.index("{{- with $np.metricsFrom }}") : text.index("ingress: []")]
    assert ingress.count("- from:") == 1 and "port: {{ $.Values.health.port }}" in ingress
    # egress: DNS, then the store's and object storage's ports, then what the user adds
    egress = text[text.index("egress:") :]
    assert "port: 53" in egress and "protocol: UDP" in egress
    assert 'dict "store" $np.store "objectStorage" $np.objectStorage' in egress
    assert "{{- range $peer.ports }}" in egress and "{{- with $np.extraEgress }}" in egress
    assert "{{- if .Values.tracing.otlpEndpoint }}" in egress  # the collector only when traces go out
    assert "0.0.0.0/0" not in text, "no catch-all peer: an empty `to` already means any address"


def test_settings_defaults_are_the_codes_and_parse() -> None:
    defaults = Settings()
    values = _values()["settings"]
    env = {}
    for key, name in _settings_map().items():
        assert values[key] == getattr(defaults, _field_of(name)), f"settings.{key} ({name})"
        env[name] = str(values[key])
    assert Settings.from_env(env) == defaults


def test_termination_grace_exceeds_the_shutdown_grace() -> None:
    values = _values()
    grace = values["settings"]["shutdownGraceSecs"]
    assert grace == Settings().shutdown_grace
    assert values["worker"]["terminationGracePeriodSeconds"] > grace
    assert values["control"]["terminationGracePeriodSeconds"] > grace
    helper = (TEMPLATES / "_helpers.tpl").read_text(encoding="utf-8")
    assert "shutdownGraceSecs" in helper, "the rendered period no longer follows the grace"


def test_pods_run_existing_roles_and_commands() -> None:
    from roboflow_cli.distributed import run
    from roboflow_cli.main import cli
    from roboflow_distributed.runner import ROLES

    choices = set(ROLES)  # what `run --role` accepts (checked by its callback)
    worker = (TEMPLATES / "worker-deployment.yaml").read_text(encoding="utf-8")
    control = (TEMPLATES / "control-deployment.yaml").read_text(encoding="utf-8")
    roles = re.compile(r"- --role\s*\n\s*- (\w+)")
    assert roles.findall(worker) == ["worker"]
    assert roles.findall(control) == ["scanner", "reaper", "finalizer"]
    assert set(roles.findall(worker + control)) <= choices
    ctx = click.Context(cli)  # the group loads the distributed commands when listed or run
    assert {"run", "health", "submit"} <= set(cli.list_commands(ctx))
    assert all(cli.get_command(ctx, name) is not None for name in ("run", "health", "submit"))
    helpers = (TEMPLATES / "_helpers.tpl").read_text(encoding="utf-8")
    assert "path: /health/ready" in helpers and "path: /health/live" in helpers
    assert "name: HEALTH_PORT" in helpers
    health = next(p for p in run.params if p.name == "health_port")
    assert health.envvar == "HEALTH_PORT", "the chart sets HEALTH_PORT: `roboflow run` must read it"
    assert worker.count('include "roboflow.probes"') == control.count('include "roboflow.probes"') == 1


def test_ui_deployment_runs_roboflow_ui_with_its_token_and_probes() -> None:
    from roboflow_cli.console.app import healthz, livez
    from roboflow_cli.console.security import TOKEN_ENV
    from roboflow_cli.main import cli

    ui = (TEMPLATES / "ui-deployment.yaml").read_text(encoding="utf-8")
    service = (TEMPLATES / "ui-service.yaml").read_text(encoding="utf-8")
    others = [(TEMPLATES / f"ui-{n}.yaml").read_text(encoding="utf-8") for n in ("secret", "networkpolicy")]
    for text in (ui, service, *others):
        assert text.startswith("{{- if ") and ".Values.ui.enabled" in text.splitlines()[0]
    assert _values()["ui"]["enabled"] is False, "the console is off by default"
    command = cli.get_command(click.Context(cli), "ui")  # loaded when listed or run
    assert command is not None
    options = {p.opts[0] for p in command.params}
    assert re.search(r"args:\s*\n\s*- ui\s*\n\s*- --host\s*\n\s*- 0\.0\.0\.0\s*\n\s*- --port", ui)
    assert {"--host", "--port"} <= options
    assert f"- name: {TOKEN_ENV}\n" in ui and "secretKeyRef" in ui
    assert "fail " in ui, "without a token the chart must refuse (the console refuses to start)"
    assert f"path: {next(iter(healthz.paths))}" in ui and f"path: {next(iter(livez.paths))}" in ui
    assert "readinessProbe" in ui and "livenessProbe" in ui
    assert "targetPort: http" in service and "name: http" in ui


# --- Dockerfile ----------------------------------------------------------------------------------


def _instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    out = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_dockerfile_entrypoint_and_command() -> None:
    ins = _instructions()
    entrypoints = [json.loads(rest) for word, rest in ins if word == "ENTRYPOINT"]
    commands = [json.loads(rest) for word, rest in ins if word == "CMD"]
    assert entrypoints[-1] == ["roboflow"]
    assert commands[-1] == ["run", "--role", "worker"]
    users = [rest for word, rest in ins if word == "USER"]
    assert users, "the image must not run as root"
    assert users[-1].split(":")[0] not in ("0", "root")


def test_dockerfile_builds_the_locked_workspace_on_python_311_slim() -> None:
    text = " ".join(rest for _, rest in _instructions())
    assert "ARG PYTHON_IMAGE=python:3.11-slim-bookworm" in DOCKERFILE.read_text(encoding="utf-8")
    froms = [rest for word, rest in _instructions() if word == "FROM"]
    assert sum(f.startswith("${PYTHON_IMAGE}") for f in froms) == 2, froms
    assert "uv sync --frozen --no-dev --all-packages" in text
    assert "/app/.venv" in text
    assert re.search(r"apt-get install [^&]*\bffmpeg\b", text)


def test_dockerfile_copies_every_workspace_manifest() -> None:
    root = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    members = [
        d.relative_to(ROOT).as_posix()
        for pattern in root["tool"]["uv"]["workspace"]["members"]
        for d in sorted(ROOT.glob(pattern))
        if (d / "pyproject.toml").is_file()
    ]
    assert members
    copies = {rest.split()[0] for word, rest in _instructions() if word == "COPY" and "--from" not in rest}
    missing = [m for m in members if f"{m}/pyproject.toml" not in copies]
    assert not missing, f"add to the dependency layer of deploy/Dockerfile: {missing}"
    assert {"pyproject.toml", "packages/", "apps/"} <= copies


def test_dockerignore_keeps_what_the_build_needs() -> None:
    ignored = {
        line.strip()
        for line in (DEPLOY / "Dockerfile.dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert ".git" in ignored
    assert "**/.venv" in ignored
    assert not ignored & {"packages", "apps", "uv.lock", "pyproject.toml", "*"}


# --- dashboards and alert rules ------------------------------------------------------------------


def _dashboard_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return [t["expr"] for p in dashboard["panels"] for t in p["targets"]]


def _alert_rules() -> list[dict[str, Any]]:
    data = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    return [rule for group in data["groups"] for rule in group["rules"]]


def queried_metrics() -> set[str]:
    """Every roboflow series the dashboard and the alert rules query (checked against a real scrape
    in tests/roboflow_distributed/test_telemetry.py)."""
    exprs = _dashboard_exprs() + [rule["expr"] for rule in _alert_rules()]
    return {name for expr in exprs for name in _METRIC.findall(expr)}


def test_dashboard_is_grafana_json_over_the_prometheus_datasource() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert dashboard["uid"] and dashboard["title"] and dashboard["schemaVersion"] >= 30
    assert [v["name"] for v in dashboard["templating"]["list"]] == ["datasource"]
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    for panel in panels:
        assert panel["type"] in ("timeseries", "stat") and panel["targets"], panel["title"]
        assert panel["datasource"]["uid"] == "${datasource}"
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24
        for target in panel["targets"]:
            assert _METRIC.search(target["expr"]), target["expr"]
            assert target["expr"].count("(") == target["expr"].count(")")
    titles = " ".join(p["title"].lower() for p in panels)
    for topic in ("throughput", "queue", "failures", "stage", "store latency"):
        assert topic in titles, f"the dashboard has no {topic} panel"


def test_alert_rules_are_prometheus_rules() -> None:
    rules = _alert_rules()
    names = {rule["alert"] for rule in rules}
    assert {
        "RoboflowNoLiveWorkers",
        "RoboflowBatchStalled",
        "RoboflowDeadJobRate",
        "RoboflowStoreErrors",
    } <= names
    for rule in rules:
        assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["alert"]
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"]
        assert _METRIC.search(rule["expr"]) and rule["expr"].count("(") == rule["expr"].count(")")


def test_queried_metrics_are_declared_by_the_code() -> None:
    """Each series the dashboard or the alerts query is one the code declares (its base name)."""
    code = _code_text()
    declared = {
        "roboflow_" + name.replace(".", "_") for name in re.findall(r'"roboflow\.([a-z0-9_.]+)"', code)
    }
    suffixes = ("_total", "_seconds", "_bytes", "_bucket", "_count", "_sum")
    for metric in queried_metrics():
        base = metric
        while base.endswith(suffixes):
            base = next(base.removesuffix(s) for s in suffixes if base.endswith(s))
        assert base in declared, f"{metric}: no instrument named {base.replace('_', '.')} in the code"


def test_chart_ships_the_dashboard_and_rules_it_references() -> None:
    for template, asset in (("grafana-dashboard.yaml", DASHBOARD), ("prometheusrule.yaml", ALERTS)):
        text = (TEMPLATES / template).read_text(encoding="utf-8")
        assert f'.Files.Get "files/{asset.name}"' in text
    for deployment in ("worker-deployment.yaml", "control-deployment.yaml"):
        assert 'include "roboflow.scrapeAnnotations"' in (TEMPLATES / deployment).read_text(encoding="utf-8")
    monitor = (TEMPLATES / "podmonitor.yaml").read_text(encoding="utf-8")
    assert "port: health" in monitor and "path: /metrics" in monitor


# --- helm (only where the binary is on PATH) -----------------------------------------------------

HELM = shutil.which("helm")
needs_helm = pytest.mark.skipif(HELM is None, reason="helm not on PATH: chart not linted or rendered")


def _helm(*args: str) -> subprocess.CompletedProcess[str]:
    assert HELM is not None
    return subprocess.run([HELM, *args], capture_output=True, text=True, timeout=120, check=False)


def _render(*sets: str) -> dict[tuple[str, str], dict[str, Any]]:
    args = ["template", "rf", str(CHART)]
    for item in sets:
        args += ["--set", item]
    done = _helm(*args)
    assert done.returncode == 0, done.stderr
    docs = [d for d in yaml.safe_load_all(done.stdout) if d]
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]  # type: ignore[no-any-return]


@needs_helm
def test_helm_lint() -> None:
    done = _helm("lint", str(CHART), "--strict", "--set", f"store={STORE}")
    assert done.returncode == 0, done.stdout + done.stderr


@needs_helm
def test_helm_template_defaults() -> None:
    docs = _render(f"store={STORE}")
    assert set(docs) == {
        ("NetworkPolicy", "rf-roboflow"),
        ("ServiceAccount", "rf-roboflow"),
        ("ConfigMap", "rf-roboflow"),
        ("Deployment", "rf-roboflow-worker"),
        ("Deployment", "rf-roboflow-control"),
        ("PodDisruptionBudget", "rf-roboflow-worker"),
    }
    data = docs["ConfigMap", "rf-roboflow"]["data"]
    assert data["ROBOFLOW_STORE"] == STORE
    assert set(Settings.ENV.values()) <= set(data)
    Settings.from_env(data)  # every rendered value parses

    worker = docs["Deployment", "rf-roboflow-worker"]
    pod = worker["spec"]["template"]["spec"]
    assert worker["spec"]["replicas"] == 2
    assert pod["terminationGracePeriodSeconds"] > float(data["ROBOFLOW_SHUTDOWN_GRACE_SECS"])
    box = _container(worker)
    assert box["args"] == ["run", "--role", "worker"]
    env = {e["name"]: e for e in box["env"]}
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["TMPDIR"]["value"] == "/tmp"
    assert box["readinessProbe"]["httpGet"] == {"path": "/health/ready", "port": "health"}
    assert box["livenessProbe"]["httpGet"] == {"path": "/health/live", "port": "health"}
    assert box["ports"] == [{"name": "health", "containerPort": 8080, "protocol": "TCP"}]
    assert env["HEALTH_PORT"]["value"] == "8080"
    assert box["resources"]["requests"] == {"cpu": "2", "memory": "4Gi"}
    assert {"name": "tmp", "mountPath": "/tmp"} in box["volumeMounts"]
    assert pod["volumes"] == [{"name": "tmp", "emptyDir": {"sizeLimit": "32Gi"}}]
    assert "nvidia.com/gpu" not in box["resources"].get("limits", {})

    control = docs["Deployment", "rf-roboflow-control"]
    assert control["spec"]["replicas"] == 1
    roles = ["--role", "scanner", "--role", "reaper", "--role", "finalizer"]
    assert _container(control)["args"] == ["run", *roles]
    pdb = docs["PodDisruptionBudget", "rf-roboflow-worker"]["spec"]
    assert pdb["selector"]["matchLabels"] == worker["spec"]["selector"]["matchLabels"]

    policy = docs["NetworkPolicy", "rf-roboflow"]["spec"]
    selected = policy["podSelector"]["matchLabels"]
    for deployment in (worker, control):
        assert selected.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    assert policy["ingress"] == []  # nothing outside the release reaches the pods
    ports = [{(p["port"], p["protocol"]) for p in rule["ports"]} for rule in policy["egress"]]
    assert ports == [{(53, "UDP"), (53, "TCP")}, {(443, "TCP"), (80, "TCP")}, {(2379, "TCP"), (20160, "TCP")}]
    assert all("to" not in rule for rule in policy["egress"])


@needs_helm
def test_helm_template_options() -> None:
    docs = _render(
        "store=tikv://pd-0:2379\\,pd-1:2379",
        "settings.shutdownGraceSecs=60",
        "worker.gpu.enabled=true",
        "worker.autoscaling.enabled=true",
        "credentials.create=true",
        "credentials.aws.accessKeyId=AK",
        "credentials.aws.secretAccessKey=SK",
        "storage.awsEndpointUrl=http://minio:9000",
        "storage.allowedEndpoints=http://minio:9000",
        "extraEnv.TIKV_OPERATION_TIMEOUT_SECS=45",
        "verbose=true",
    )
    data = docs["ConfigMap", "rf-roboflow"]["data"]
    assert data["ROBOFLOW_STORE"] == "tikv://pd-0:2379,pd-1:2379"
    assert data["AWS_ENDPOINT_URL"] == data["ROBOFLOW_ALLOWED_ENDPOINTS"] == "http://minio:9000"
    assert data["TIKV_OPERATION_TIMEOUT_SECS"] == "45"
    assert docs["Secret", "rf-roboflow-credentials"]["stringData"] == {
        "AWS_ACCESS_KEY_ID": "AK",
        "AWS_SECRET_ACCESS_KEY": "SK",
    }
    assert ("HorizontalPodAutoscaler", "rf-roboflow-worker") in docs
    worker = docs["Deployment", "rf-roboflow-worker"]
    assert "replicas" not in worker["spec"]
    assert worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= 65
    box = _container(worker)
    assert box["args"][-1] == "-v"
    assert box["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert {"secretRef": {"name": "rf-roboflow-credentials"}} in box["envFrom"]
    assert {e["name"]: e.get("value") for e in box["env"]}["NVIDIA_DRIVER_CAPABILITIES"] == (
        "compute,utility,video"
    )


@needs_helm
def test_helm_template_store_security_and_metrics_access() -> None:
    docs = _render(
        f"store={STORE}",
        "etcd.tls.existingSecret=etcd-client-tls",
        "etcd.auth.user=roboflow",
        "etcd.auth.passwordSecret=etcd-password",
        "networkPolicy.metricsFrom[0].namespaceSelector.matchLabels.name=monitoring",
        "networkPolicy.store.to[0].namespaceSelector.matchLabels.name=etcd",
    )
    for name in ("rf-roboflow-worker", "rf-roboflow-control"):
        deployment = docs["Deployment", name]
        box = _container(deployment)
        env = {e["name"]: e for e in box["env"]}
        assert env["ROBOFLOW_ETCD_CA_PATH"]["value"] == "/etc/roboflow/etcd-tls/ca.crt"
        assert env["ROBOFLOW_ETCD_USER"]["value"] == "roboflow"
        assert env["ROBOFLOW_ETCD_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
            "name": "etcd-password",
            "key": "password",
        }
        assert {"name": "etcd-tls", "mountPath": "/etc/roboflow/etcd-tls", "readOnly": True} in box[
            "volumeMounts"
        ]
        volumes = deployment["spec"]["template"]["spec"]["volumes"]
        assert {
            "name": "etcd-tls",
            "secret": {"secretName": "etcd-client-tls", "defaultMode": 0o400},
        } in volumes
    policy = docs["NetworkPolicy", "rf-roboflow"]["spec"]
    assert policy["ingress"] == [
        {
            "from": [{"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}],
            "ports": [{"port": 8080, "protocol": "TCP"}],
        }
    ]
    store_rule = next(r for r in policy["egress"] if {"port": 2379, "protocol": "TCP"} in r["ports"])
    assert store_rule["to"] == [{"namespaceSelector": {"matchLabels": {"name": "etcd"}}}]
    assert ("NetworkPolicy", "rf-roboflow") not in _render(f"store={STORE}", "networkPolicy.enabled=false")


@needs_helm
def test_helm_template_ui() -> None:
    docs = _render(f"store={STORE}", "ui.enabled=true", "ui.token.value=t0ken")
    ui = docs["Deployment", "rf-roboflow-ui"]
    box = _container(ui)
    assert box["args"] == ["ui", "--host", "0.0.0.0", "--port", "8080"]
    env = {e["name"]: e for e in box["env"]}
    assert env["ROBOFLOW_UI_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "rf-roboflow-ui-token",
        "key": "token",
    }
    assert docs["Secret", "rf-roboflow-ui-token"]["stringData"] == {"token": "t0ken"}
    assert box["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert box["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "http"}
    service = docs["Service", "rf-roboflow-ui"]["spec"]
    assert service["selector"] == ui["spec"]["selector"]["matchLabels"]
    assert service["ports"] == [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]
    existing = _render(f"store={STORE}", "ui.enabled=true", "ui.token.existingSecret=mine")
    assert ("Secret", "rf-roboflow-ui-token") not in existing
    ref = {e["name"]: e for e in _container(existing["Deployment", "rf-roboflow-ui"])["env"]}
    assert ref["ROBOFLOW_UI_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "mine"
    policy = docs["NetworkPolicy", "rf-roboflow-ui"]["spec"]
    assert policy["podSelector"] == ui["spec"]["selector"] and policy["ingress"] == [
        {"ports": [{"port": 8080, "protocol": "TCP"}]}
    ]
    refused = _helm("template", "rf", str(CHART), "--set", f"store={STORE}", "--set", "ui.enabled=true")
    assert refused.returncode != 0 and "ROBOFLOW_UI_TOKEN" in refused.stderr


@needs_helm
@pytest.mark.parametrize("store", ["", "sqlite:///state.db"])
def test_helm_template_refuses_a_store_the_pods_cannot_share(store: str) -> None:
    done = _helm("template", "rf", str(CHART), "--set", f"store={store}")
    assert done.returncode != 0
    assert "store" in done.stderr


@needs_helm
def test_helm_template_monitoring() -> None:
    docs = _render(
        f"store={STORE}",
        "metrics.podMonitor.enabled=true",
        "metrics.prometheusRule.enabled=true",
        "metrics.grafanaDashboard.enabled=true",
        "tracing.otlpEndpoint=http://otel:4318",
    )
    monitor = docs["PodMonitor", "rf-roboflow"]["spec"]
    assert monitor["podMetricsEndpoints"] == [{"port": "health", "path": "/metrics", "interval": "30s"}]
    assert docs["PrometheusRule", "rf-roboflow"]["spec"] == yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    dashboard = docs["ConfigMap", "rf-roboflow-dashboard"]
    assert json.loads(dashboard["data"]["roboflow.json"]) == json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    data = docs["ConfigMap", "rf-roboflow"]["data"]
    assert data["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel:4318"
    assert data["ROBOFLOW_LOG_FORMAT"] == "json"
    for name in ("rf-roboflow-worker", "rf-roboflow-control"):
        annotations = docs["Deployment", name]["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/port"] == "8080"
        assert annotations["prometheus.io/path"] == "/metrics"
