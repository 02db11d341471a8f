#!/usr/bin/env python3
"""Validate the Kubernetes manifests under deploy/kubernetes, offline.

Run through deploy/validate.sh, which installs the pinned tools (deploy/requirements.txt) into
a virtual environment first. For every kustomization (the base, each overlay, and the base with
every component) this

1. renders it with `kubectl kustomize` (or `kustomize build`; `$KUSTOMIZE` picks the command),
2. validates every object against the Kubernetes OpenAPI schemas shipped by the
   `kubernetes-validate` package, strictly (unknown fields are errors), for the oldest and the
   newest Kubernetes version we support; kinds that are not Kubernetes' own (ServiceMonitor) are
   validated against a local schema in deploy/schemas/, and a kind with no schema is an error,
3. checks what the schemas cannot: that every setting the manifests give the server is one the
   server knows (an unknown PHONE_AGENT_* key stops it at start), that nothing secret is
   committed, that the pods run non-root on a read-only root filesystem with the probes on
   /ready and /health, that terminationGracePeriodSeconds covers the drain, that the metrics
   Service reaches metrics.bind, that the Ingress serves PUBLIC_URL's host over TLS with
   WebSocket timeouts longer than a call, and that every reference (Service -> pods and ports,
   HPA -> Deployment and the server's metric, ServiceMonitor -> Service port, NetworkPolicy ->
   ports, Ingress -> Service, ConfigMaps) resolves.

Exit status 0 when everything passes; otherwise every problem is printed and the status is 1.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path
from urllib.parse import urlparse

import jsonschema
import yaml
from kubernetes_validate import utils as kv

ROOT = Path(__file__).resolve().parent.parent
KUBE = ROOT / "deploy" / "kubernetes"
SCHEMAS = ROOT / "deploy" / "schemas"
DEFAULT_TOML = ROOT / "config" / "default.toml"
SERVER_SRC = ROOT / "crates" / "phone-agent-server" / "src"

# The oldest version the manifests need (lifecycle.preStop.sleep is on by default from 1.30)
# and the newest the schema package knows.
MIN_KUBERNETES = "1.30"

# The Secret every pod reads its secrets from; created by the user, never committed.
USER_SECRET = "phone-agent-secrets"

# Settings that must never appear with a value in a committed manifest, by the last part of
# their name (after the last `__`, or the whole short name): API keys, auth tokens, secrets,
# passwords, bearer tokens; and the database URL, which carries a password.
SECRET_LEAF = re.compile(r"^(TOKEN|SECRET|PASSWORD)$|(^|_)(API_KEY|AUTH_TOKEN|SECRET|PASSWORD)$")
SECRET_SETTINGS = {"PHONE_AGENT_DATABASE__URL"}


def is_secret(name: str) -> bool:
    return name in SECRET_SETTINGS or bool(SECRET_LEAF.search(name.rsplit("__", 1)[-1]))


# Paths Twilio requests: the webhook, its fallback, a media stream (token in the path), callbacks.
TWILIO_ROUTES = [
    "/voice",
    "/voice/fallback",
    "/voice/outbound",
    "/media/TOKEN",
    "/twilio/status",
    "/twilio/whisper",
    "/twilio/amd",
]

# Time the server needs after its drain to close sockets and exit, at least.
DRAIN_MARGIN_SECS = 10


class Problems:
    """Collects problems so that one run reports all of them."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, where: str, message: str) -> None:
        self.items.append(f"{where}: {message}")


# --- rendering ----------------------------------------------------------------------------------


def renderer() -> list[str]:
    """The command that renders a kustomization directory given as its last argument."""
    if os.environ.get("KUSTOMIZE"):
        return shlex.split(os.environ["KUSTOMIZE"])
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    sys.exit(
        "deploy/validate.py: neither kustomize nor kubectl found; install one (kubectl has "
        "kustomize built in) or set KUSTOMIZE to the command that renders a directory"
    )


def render(command: list[str], directory: Path) -> list[dict]:
    result = subprocess.run([*command, str(directory)], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} {directory} failed:\n{result.stderr.strip()}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def targets(tmp: Path) -> list[tuple[str, Path]]:
    """The base, every overlay, and the base with every component (written to tmp)."""
    found = [("base", KUBE / "base")]
    for overlay in sorted((KUBE / "overlays").iterdir()):
        if (overlay / "kustomization.yaml").is_file():
            found.append((f"overlays/{overlay.name}", overlay))
    components = sorted(
        c for c in (KUBE / "components").iterdir() if (c / "kustomization.yaml").is_file()
    )
    everything = tmp / "all-components"
    everything.mkdir()
    lines = [
        "apiVersion: kustomize.config.k8s.io/v1beta1",
        "kind: Kustomization",
        "resources:",
        f"  - {os.path.relpath(KUBE / 'base', everything)}",
        "components:",
        *(f"  - {os.path.relpath(c, everything)}" for c in components),
    ]
    (everything / "kustomization.yaml").write_text("\n".join(lines) + "\n")
    found.append(("base + all components", everything))
    return found


# --- schemas ------------------------------------------------------------------------------------


def local_schemas() -> dict[tuple[str, str], dict]:
    """Schemas of kinds Kubernetes does not define: deploy/schemas/<kind>-<group>-<version>.json."""
    schemas = {}
    for path in SCHEMAS.glob("*.json"):
        schema = json.loads(path.read_text())
        api = schema["properties"]["apiVersion"]["const"]
        kind = schema["properties"]["kind"]["const"]
        schemas[(api, kind)] = schema
    return schemas


def check_schemas(name: str, docs: list[dict], local: dict, problems: Problems) -> int:
    checked = 0
    versions = [MIN_KUBERNETES, kv.latest_version()]
    for doc in docs:
        where = f"{name}: {doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        key = (doc.get("apiVersion"), doc.get("kind"))
        if key in local:
            try:
                jsonschema.validate(doc, local[key])
            except jsonschema.ValidationError as e:
                path = ".".join(str(p) for p in e.absolute_path)
                problems.add(where, f"local schema: {path}: {e.message}")
            checked += 1
            continue
        for version in versions:
            try:
                kv.validate(doc, version, strict=True)
            except kv.ValidationError as e:
                path = ".".join(str(p) for p in e.path)
                problems.add(where, f"Kubernetes {e.version} schema: {path}: {e.message}")
            except kv.SchemaNotFoundError as e:
                problems.add(
                    where,
                    f"{e.message}; add a schema to deploy/schemas/ if this kind is intended",
                )
            checked += 1
    return checked


def server_sources() -> str:
    """The server's Rust sources, concatenated (definitions are looked up wherever they live)."""
    return "\n".join(p.read_text() for p in sorted(SERVER_SRC.rglob("*.rs")))


# --- settings -----------------------------------------------------------------------------------


def known_settings() -> tuple[set[str], set[str], dict[str, object]]:
    """(environment names the server accepts, prefixes of open maps, default.toml as a dict).

    Every leaf of config/default.toml is PHONE_AGENT_<SECTION>__<KEY>; a table that is empty
    there (e.g. [twilio.stream_parameters]) takes any key. The short names come from
    ENV_ALIASES in the server's sources.
    """
    defaults = tomllib.loads(DEFAULT_TOML.read_text())
    names = {"PHONE_AGENT_CONFIG"}
    open_prefixes: set[str] = set()

    def walk(table: dict, path: list[str]) -> None:
        if not table and path:
            open_prefixes.add("PHONE_AGENT_" + "__".join(p.upper() for p in path) + "__")
        for key, value in table.items():
            if isinstance(value, dict):
                walk(value, [*path, key])
            else:
                names.add("PHONE_AGENT_" + "__".join(p.upper() for p in [*path, key]))

    walk(defaults, [])
    # The short names: every ("NAME", "section.key") pair of the server's sources (ENV_ALIASES).
    alias = re.compile(r'\(\s*"([A-Z][A-Z0-9_]+)",\s*"[a-z0-9_]+\.[a-z0-9_.]+"\s*\)')
    names.update(alias.findall(server_sources()))
    return names, open_prefixes, defaults


def is_known(name: str, names: set[str], open_prefixes: set[str]) -> bool:
    return name in names or any(name.startswith(p) and len(name) > len(p) for p in open_prefixes)


def documented_tables() -> set[str]:
    """Tables config/default.toml documents in comments only (`# [[tools]]`,
    `# [profiles.restaurant]`): their names, taken as open (any content)."""
    header = re.compile(r"^#\s*\[\[?([a-z0-9_][a-z0-9_.]*)\]\]?\s*$")
    found = (header.match(line) for line in DEFAULT_TOML.read_text().splitlines())
    return {m.group(1) for m in found if m}


def toml_unknown_keys(value: dict, defaults: dict, path: str = "") -> list[str]:
    """Keys of a config.toml that config/default.toml does not have, as a setting or as a
    table documented in a comment."""
    documented = documented_tables()
    unknown = []
    for key, item in value.items():
        here = f"{path}.{key}" if path else key
        if key not in defaults:
            if not any(t == here or t.startswith(f"{here}.") for t in documented):
                unknown.append(here)
        elif isinstance(item, dict) and isinstance(defaults[key], dict) and defaults[key]:
            unknown.extend(toml_unknown_keys(item, defaults[key], here))
    return unknown


def setting(env: dict[str, str], defaults: dict, name: str, path: list[str]) -> int | None:
    """The integer value of a setting as the pods get it, or its default; None if unknown."""
    if name in env:
        return int(env[name])
    value: object = defaults
    for part in path:
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return int(value) if isinstance(value, int) else None


# --- the checks schemas cannot do ---------------------------------------------------------------


def by_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d.get("kind") == kind]


def labels_match(selector: dict, labels: dict) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def check_semantics(name: str, docs: list[dict], problems: Problems) -> None:
    names, open_prefixes, defaults = known_settings()
    configmaps = {d["metadata"]["name"]: d for d in by_kind(docs, "ConfigMap")}
    services = by_kind(docs, "Service")

    for secret in by_kind(docs, "Secret"):
        problems.add(
            f"{name}: Secret/{secret['metadata']['name']}",
            "a Secret is committed; document `kubectl create secret` instead",
        )

    for cm_name, cm in configmaps.items():
        for key, value in (cm.get("data") or {}).items():
            if key.endswith(".toml"):
                try:
                    parsed = tomllib.loads(value)
                except tomllib.TOMLDecodeError as e:
                    problems.add(f"{name}: ConfigMap/{cm_name}", f"{key} is not TOML: {e}")
                    continue
                for unknown in toml_unknown_keys(parsed, defaults):
                    problems.add(
                        f"{name}: ConfigMap/{cm_name}",
                        f"{key} sets `{unknown}`, which config/default.toml does not have",
                    )

    deployments = by_kind(docs, "Deployment")
    server_env: dict[str, str] = {}  # the environment of the server container, for the Ingress
    if not deployments:
        problems.add(name, "no Deployment rendered")
    for deployment in deployments:
        where = f"{name}: Deployment/{deployment['metadata']['name']}"
        pod = deployment["spec"]["template"]
        pod_labels = pod["metadata"].get("labels", {})
        spec = pod["spec"]
        if not labels_match(deployment["spec"]["selector"].get("matchLabels", {}), pod_labels):
            problems.add(where, "selector does not match the pod template's labels")
        pod_security = spec.get("securityContext", {})
        if pod_security.get("runAsNonRoot") is not True:
            problems.add(where, "pod securityContext.runAsNonRoot must be true")
        seccomp = pod_security.get("seccompProfile", {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            problems.add(
                where, "pod seccompProfile must be RuntimeDefault (Pod Security: restricted)"
            )
        if spec.get("automountServiceAccountToken") is not False:
            problems.add(where, "automountServiceAccountToken must be false (no API access)")
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for volume in volumes.values():
            ref = volume.get("configMap", {}).get("name")
            if ref and ref not in configmaps:
                problems.add(where, f"volume {volume['name']} mounts missing ConfigMap {ref}")

        for container in spec["containers"]:
            cwhere = f"{where} container {container['name']}"
            security = container.get("securityContext", {})
            if security.get("readOnlyRootFilesystem") is not True:
                problems.add(cwhere, "readOnlyRootFilesystem must be true")
            if security.get("allowPrivilegeEscalation") is not False:
                problems.add(cwhere, "allowPrivilegeEscalation must be false")
            if "ALL" not in security.get("capabilities", {}).get("drop", []):
                problems.add(cwhere, "capabilities must drop ALL")
            for mount in container.get("volumeMounts", []):
                if mount["name"] not in volumes:
                    problems.add(cwhere, f"mounts undefined volume {mount['name']}")
            if not any(
                m.get("mountPath") == "/app/data" for m in container.get("volumeMounts", [])
            ):
                problems.add(cwhere, "needs a writable volume at /app/data (the server's data/)")
            resources = container.get("resources", {})
            for field in ("cpu", "memory"):
                if field not in resources.get("requests", {}):
                    problems.add(cwhere, f"resources.requests.{field} missing")
            if "memory" not in resources.get("limits", {}):
                problems.add(cwhere, "resources.limits.memory missing")
            ports = {p.get("name"): p["containerPort"] for p in container.get("ports", [])}
            for probe, path in (("readinessProbe", "/ready"), ("livenessProbe", "/health")):
                get = container.get(probe, {}).get("httpGet", {})
                if get.get("path") != path:
                    problems.add(cwhere, f"{probe} must GET {path}")
                elif get.get("port") not in ports and get.get("port") not in ports.values():
                    problems.add(cwhere, f"{probe} port {get.get('port')} is not a container port")

            # The environment the server gets: the ConfigMaps' keys, then env entries.
            env: dict[str, str] = {}
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    ref = source["configMapRef"]["name"]
                    if ref not in configmaps:
                        problems.add(cwhere, f"envFrom references missing ConfigMap {ref}")
                        continue
                    env.update(configmaps[ref].get("data") or {})
                elif "secretRef" in source:
                    ref = source["secretRef"]["name"]
                    if ref != USER_SECRET:
                        problems.add(
                            cwhere,
                            f"envFrom references Secret {ref}; the documented one is {USER_SECRET}",
                        )
            for item in container.get("env", []):
                if "value" in item:
                    env[item["name"]] = item["value"]
                elif not is_known(item["name"], names, open_prefixes):
                    problems.add(cwhere, f"env {item['name']} is not a setting of the server")
            for key, value in env.items():
                if not is_known(key, names, open_prefixes):
                    problems.add(
                        cwhere,
                        f"sets {key}, which the server does not know (config/default.toml, "
                        "ENV_ALIASES): it would refuse to start. Rename or remove it "
                        "in deploy/kubernetes",
                    )
                if is_secret(key) and value and value != "off":
                    problems.add(
                        cwhere, f"{key} has a value in a manifest; it belongs in the Secret"
                    )
            server_env = env
            port = env.get("PHONE_AGENT_SERVER__PORT") or env.get("PORT")
            if port is None or int(port) != ports.get("http"):
                problems.add(cwhere, f"server port {port} is not the container port `http`")
            # Where the server serves /metrics: its own listener (metrics.bind) when the server
            # has one, else the call port. Services named `metrics` ports must lead there.
            if "bind" in defaults.get("metrics", {}):
                bind = env.get("PHONE_AGENT_METRICS__BIND", defaults["metrics"]["bind"])
                metrics_port = int(bind.rsplit(":", 1)[1]) if ":" in bind else None
                if (
                    bind.startswith("127.")
                    or bind.startswith("[::1]")
                    or bind.startswith("localhost")
                ):
                    problems.add(
                        cwhere,
                        f"metrics.bind {bind!r} is loopback: set PHONE_AGENT_METRICS__BIND so "
                        "Prometheus can scrape it",
                    )
            else:
                metrics_port = ports.get("http")
            for service in services:
                if not labels_match(service["spec"].get("selector", {}), pod_labels):
                    continue
                for sport in service["spec"]["ports"]:
                    if sport.get("name") != "metrics":
                        continue
                    target = sport.get("targetPort", sport["port"])
                    target = ports.get(target, target)
                    if target != metrics_port:
                        problems.add(
                            f"{name}: Service/{service['metadata']['name']}",
                            f"port `metrics` leads to container port {target}, but the server "
                            f"serves /metrics on {metrics_port}",
                        )

            # terminationGracePeriodSeconds >= preStop sleep + notice + grace + margin.
            sleep = (
                container.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
            )
            notice = (
                setting(
                    env,
                    defaults,
                    "PHONE_AGENT_SERVER__SHUTDOWN_NOTICE_SECS",
                    ["server", "shutdown_notice_secs"],
                )
                or 0
            )
            grace = setting(
                env,
                defaults,
                "PHONE_AGENT_SERVER__SHUTDOWN_GRACE_SECS",
                ["server", "shutdown_grace_secs"],
            )
            if grace is None:
                problems.add(
                    cwhere, "server.shutdown_grace_secs is neither set nor in default.toml"
                )
                grace = 0
            needed = sleep + notice + grace + DRAIN_MARGIN_SECS
            have = spec.get("terminationGracePeriodSeconds", 30)
            if have < needed:
                problems.add(
                    where,
                    f"terminationGracePeriodSeconds {have} < preStop sleep {sleep} + notice "
                    f"{notice} + shutdown_grace_secs {grace} + margin {DRAIN_MARGIN_SECS} "
                    f"= {needed}",
                )

        for service in services:
            selector = service["spec"].get("selector", {})
            if not labels_match(selector, pod_labels):
                continue
            all_ports = {
                p.get("name"): p["containerPort"]
                for c in spec["containers"]
                for p in c.get("ports", [])
            }
            for port in service["spec"]["ports"]:
                target = port.get("targetPort", port["port"])
                if target not in all_ports and target not in all_ports.values():
                    problems.add(
                        f"{name}: Service/{service['metadata']['name']}",
                        f"targetPort {target} is not a port of the pods",
                    )

    pod_label_sets = [d["spec"]["template"]["metadata"].get("labels", {}) for d in deployments]
    for service in services:
        if not any(
            labels_match(service["spec"].get("selector", {}), labels) for labels in pod_label_sets
        ):
            problems.add(f"{name}: Service/{service['metadata']['name']}", "selects no pods")
    for pdb in by_kind(docs, "PodDisruptionBudget"):
        selector = pdb["spec"].get("selector", {}).get("matchLabels", {})
        if not any(labels_match(selector, labels) for labels in pod_label_sets):
            problems.add(
                f"{name}: PodDisruptionBudget/{pdb['metadata']['name']}", "selects no pods"
            )

    container_ports = {
        p.get("name"): p["containerPort"]
        for d in deployments
        for c in d["spec"]["template"]["spec"]["containers"]
        for p in c.get("ports", [])
    }
    for policy in by_kind(docs, "NetworkPolicy"):
        where = f"{name}: NetworkPolicy/{policy['metadata']['name']}"
        selector = policy["spec"]["podSelector"].get("matchLabels", {})
        if not any(labels_match(selector, labels) for labels in pod_label_sets):
            problems.add(where, "selects no pods")
        for rule in policy["spec"].get("ingress", []):
            for port in rule.get("ports", []):
                target = port.get("port")
                if target not in container_ports and target not in container_ports.values():
                    problems.add(where, f"admits port {target}, which is not a port of the pods")

    sources = server_sources()
    for hpa in by_kind(docs, "HorizontalPodAutoscaler"):
        where = f"{name}: HorizontalPodAutoscaler/{hpa['metadata']['name']}"
        ref = hpa["spec"]["scaleTargetRef"]
        if not any(d["metadata"]["name"] == ref["name"] for d in deployments):
            problems.add(where, f"scales {ref['kind']}/{ref['name']}, which is not rendered")
        for metric in hpa["spec"].get("metrics", []):
            if metric["type"] == "Pods":
                metric_name = metric["pods"]["metric"]["name"]
                if f'"{metric_name}"' not in sources:
                    problems.add(where, f"metric {metric_name} is not a metric the server records")

    for monitor in by_kind(docs, "ServiceMonitor"):
        where = f"{name}: ServiceMonitor/{monitor['metadata']['name']}"
        selector = monitor["spec"]["selector"].get("matchLabels", {})
        selected = [s for s in services if labels_match(selector, s["metadata"].get("labels", {}))]
        if not selected:
            problems.add(where, "selects no Service")
        for endpoint in monitor["spec"]["endpoints"]:
            if not any(
                endpoint.get("port") in [p.get("name") for p in s["spec"]["ports"]]
                for s in selected
            ):
                problems.add(
                    where, f"port {endpoint.get('port')} is not a port of the selected Service"
                )

    service_ports = {
        s["metadata"]["name"]: {p.get("name") for p in s["spec"]["ports"]}
        | {p["port"] for p in s["spec"]["ports"]}
        for s in services
    }
    for ingress in by_kind(docs, "Ingress"):
        where = f"{name}: Ingress/{ingress['metadata']['name']}"
        for rule in ingress["spec"].get("rules", []):
            for path in rule.get("http", {}).get("paths", []):
                backend = path["backend"]["service"]
                port = backend["port"].get("name", backend["port"].get("number"))
                if backend["name"] not in service_ports:
                    problems.add(where, f"routes to missing Service {backend['name']}")
                elif port not in service_ports[backend["name"]]:
                    problems.add(where, f"routes to missing port {port} of {backend['name']}")
        if not ingress["spec"].get("tls"):
            problems.add(
                where, "no TLS: Twilio requires https:// and wss:// with a valid certificate"
            )
        # Twilio signs the URL it calls: PUBLIC_URL must be this Ingress's https:// host.
        public_url = server_env.get("PUBLIC_URL") or server_env.get(
            "PHONE_AGENT_SERVER__PUBLIC_URL"
        )
        if not public_url:
            problems.add(where, "PUBLIC_URL is not set: signatures are checked against it")
        else:
            url = urlparse(public_url)
            rule_hosts = {r.get("host") for r in ingress["spec"].get("rules", [])}
            tls_hosts = {h for t in ingress["spec"].get("tls", []) for h in t.get("hosts", [])}
            if url.scheme != "https":
                problems.add(where, f"PUBLIC_URL {public_url} is not https://")
            if url.hostname not in rule_hosts or url.hostname not in tls_hosts:
                problems.add(
                    where,
                    f"PUBLIC_URL host {url.hostname} is not this Ingress's host and TLS host "
                    f"({sorted(h for h in rule_hosts if h)}): Twilio's signatures would not match",
                )
        # Every route Twilio calls must be routed (Prefix paths match whole path segments).
        prefixes = [
            p["path"]
            for r in ingress["spec"].get("rules", [])
            for p in r.get("http", {}).get("paths", [])
            if p.get("pathType") == "Prefix"
        ]
        for route in TWILIO_ROUTES:
            if not any(
                pre == "/" or route == pre.rstrip("/") or route.startswith(pre.rstrip("/") + "/")
                for pre in prefixes
            ):
                problems.add(where, f"does not route {route}, which Twilio calls")
        # A media stream lasts the whole call: ingress-nginx's timeouts must outlast it.
        if ingress["spec"].get("ingressClassName") == "nginx":
            longest = setting(
                server_env, defaults, "PHONE_AGENT_AGENT__MAX_CALL_SECS", ["agent", "max_call_secs"]
            )
            annotations = ingress["metadata"].get("annotations", {})
            for key in ("proxy-read-timeout", "proxy-send-timeout"):
                value = annotations.get(f"nginx.ingress.kubernetes.io/{key}")
                if value is None or (longest is not None and int(value) < longest):
                    problems.add(
                        where,
                        f"nginx.ingress.kubernetes.io/{key} is {value}; it must be at least "
                        f"agent.max_call_secs ({longest}) or calls are cut",
                    )


def main() -> int:
    command = renderer()
    local = local_schemas()
    problems = Problems()
    with tempfile.TemporaryDirectory(prefix="phone-agent-kustomize-") as tmp:
        for name, directory in targets(Path(tmp)):
            try:
                docs = render(command, directory)
            except RuntimeError as e:
                problems.add(name, str(e))
                continue
            checked = check_schemas(name, docs, local, problems)
            check_semantics(name, docs, problems)
            kinds = ", ".join(sorted({d["kind"] for d in docs}))
            print(f"{name}: {len(docs)} objects ({kinds}), {checked} schema validations")
    if problems.items:
        for item in problems.items:
            print(f"ERROR {item}")
        print(f"deploy/validate.py: {len(problems.items)} problem(s)")
        return 1
    print(
        f"deploy/validate.py: manifests OK (Kubernetes {MIN_KUBERNETES} and {kv.latest_version()})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
