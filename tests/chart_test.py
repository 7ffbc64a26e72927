"""charts/hydrant with the real Helm library (helm-python-sdk) and kubernetes-validate.

Run by tests/chart.rs (python tests/chart_test.py HYDRANT_BINARY). Lints the chart; renders it
with the default values and every file under charts/hydrant/ci/; validates every rendered
document strictly against Kubernetes 1.29 and the newest schema kubernetes-validate ships; checks
that the MutatingWebhookConfiguration reaches the webhook's Service, port and /mutate; that
every argument the Deployments pass is one the binary accepts (the binary parses them); that
values.schema.json rejects wrong types and unknown keys; and that the Dockerfile's binary, user
and entrypoint match what the chart runs. Exits non-zero with every failure listed.
"""

import json
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

import kubernetes_validate
import yaml
from helm_python.chart import Chart, lint

ROOT = pathlib.Path(__file__).resolve().parent.parent
CHART = ROOT / "charts" / "hydrant"
RELEASE, NAMESPACE = "hydrant", "hydrant-system"
VERSIONS = ["1.29.0", kubernetes_validate.latest_version()]
# Custom resources have no schema in kubernetes-validate.
CUSTOM = ("cert-manager.io/", "monitoring.coreos.com/")

failures = []


def check(condition, message):
    if not condition:
        failures.append(message)
    return condition


def render(values):
    chart = Chart.load(str(CHART))
    chart.validate_schema(values)
    rendered = chart.render(values, name=RELEASE, namespace=NAMESPACE)
    docs = []
    for path, text in rendered.items():
        if path.endswith(".yaml"):
            docs.extend(d for d in yaml.safe_load_all(text) if d)
    return docs, rendered.get("hydrant/templates/NOTES.txt", "")


def by_kind(docs, kind):
    return [d for d in docs if d["kind"] == kind]


def accepted_by_binary(binary, args, label):
    """Runs the binary with the chart's arguments: clap parses them (values, enums, durations),
    then the run stops at the first file it cannot read. A usage error means a bad flag."""
    run = subprocess.run(
        [binary, *args],
        capture_output=True,
        text=True,
        timeout=20,
        env={"PATH": "/usr/bin:/bin", "VAULT_ADDR": "", "VAULT_TOKEN": ""},
    )
    stderr = run.stderr
    check(
        "Usage:" not in stderr and "unexpected argument" not in stderr,
        f"{label}: the binary refuses the chart's arguments {args}:\n{stderr}",
    )
    return stderr


def flags_in_help(binary, subcommand):
    text = subprocess.run(
        [binary, subcommand, "--help"], capture_output=True, text=True, check=True
    ).stdout
    return set(re.findall(r"(--[a-z][a-z0-9-]*)", text))


def check_test_hook(name, docs, values, services):
    """The `helm test` pod checks the webhook through the Service and port the API server uses,
    trusting only the CA of the webhook's Secret."""
    tests = [
        d for d in by_kind(docs, "Pod")
        if d["metadata"].get("annotations", {}).get("helm.sh/hook") == "test"
    ]
    if not check(len(tests) == 1, f"{name}: {len(tests)} helm test pods"):
        return None
    pod = tests[0]
    hook = by_kind(docs, "MutatingWebhookConfiguration")[0]["webhooks"][0]["clientConfig"]["service"]
    args = dict(a.split("=", 1) for a in pod["spec"]["containers"][0]["args"] if "=" in a)
    check(
        args.get("--url") == f"https://{hook['name']}.{hook['namespace']}.svc:{hook['port']}{hook['path']}",
        f"{name}: the helm test calls {args.get('--url')}, not the webhook's Service",
    )
    check(hook["name"] in services, f"{name}: the helm test's Service does not exist")
    volume = next(v for v in pod["spec"]["volumes"] if v["name"] == "ca")
    mode = values.get("certificates", {}).get("mode", "self-managed")
    key = "ca-bundle.crt" if mode == "self-managed" else "ca.crt"
    check(
        volume["secret"]["items"] == [{"key": key, "path": "ca.crt"}]
        and args.get("--ca-cert") == "/etc/hydrant/ca/ca.crt",
        f"{name}: the helm test does not trust the CA of the webhook's Secret ({volume})",
    )
    check(pod["spec"]["automountServiceAccountToken"] is False, f"{name}: the helm test gets an API token")
    return pod


def check_documents(name, docs, binary, values):
    for doc in docs:
        what = f"{name}: {doc['kind']} {doc['metadata'].get('name')}"
        if doc["apiVersion"].startswith(CUSTOM):
            continue
        for version in VERSIONS:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as e:
                failures.append(f"{what} is invalid for Kubernetes {version}: {e.message}")
    services = {d["metadata"]["name"]: d for d in by_kind(docs, "Service")}
    deployments = {d["metadata"]["name"]: d for d in by_kind(docs, "Deployment")}
    hooks = by_kind(docs, "MutatingWebhookConfiguration")
    check(len(hooks) == 1, f"{name}: {len(hooks)} MutatingWebhookConfigurations")
    for hook in hooks:
        for entry in hook["webhooks"]:
            service = entry["clientConfig"]["service"]
            check(service["path"] == "/mutate", f"{name}: webhook path {service['path']}")
            check(service["namespace"] == NAMESPACE, f"{name}: webhook namespace")
            target = services.get(service["name"])
            if not check(target is not None, f"{name}: no Service {service['name']}"):
                continue
            port = [p for p in target["spec"]["ports"] if p["port"] == service["port"]]
            if not check(port, f"{name}: Service has no port {service['port']}"):
                continue
            deployment = deployments[service["name"]]
            pod = deployment["spec"]["template"]
            selector = target["spec"]["selector"]
            check(
                all(pod["metadata"]["labels"].get(k) == v for k, v in selector.items()),
                f"{name}: the Service does not select the webhook pods",
            )
            container = pod["spec"]["containers"][0]
            named = {p["name"]: p["containerPort"] for p in container["ports"]}
            target_port = port[0]["targetPort"]
            listen = next(a for a in container["args"] if a.startswith("--listen="))
            check(
                listen.endswith(f":{named.get(target_port)}"),
                f"{name}: the webhook listens on {listen}, the Service sends to {target_port}",
            )
            check(entry["sideEffects"] == "None", f"{name}: sideEffects")
            self_managed = "--self-managed-certificates" in container["args"]
            check(
                "caBundle" in entry["clientConfig"]
                or "cert-manager.io/inject-ca-from" in hook["metadata"].get("annotations", {})
                or self_managed,
                f"{name}: webhook {entry['name']} gets no CA bundle",
            )
            if self_managed:
                args = dict(a.split("=", 1) for a in container["args"] if "=" in a)
                check(
                    args.get("--webhook-config") == hook["metadata"]["name"]
                    and args.get("--service") == service["name"],
                    f"{name}: the webhook would manage another configuration or Service",
                )
            excluded = [
                e
                for e in entry["namespaceSelector"].get("matchExpressions", [])
                if e["key"] == "kubernetes.io/metadata.name" and e["operator"] == "NotIn"
            ]
            check(
                excluded and {NAMESPACE, "kube-system"} <= set(excluded[0]["values"]),
                f"{name}: the release namespace and kube-system are not excluded",
            )
    test = check_test_hook(name, docs, values, services)
    pods = [(d["metadata"]["name"], d["spec"]["template"]["spec"]) for d in deployments.values()]
    if test:
        pods.append((test["metadata"]["name"], test["spec"]))
    omit = values.get("agent", {}).get("runAs", {}).get("omit", False)
    for pod_name, spec in pods:
        for container in spec["containers"]:
            args = container["args"]
            label = f"{name}: {pod_name}"
            check("command" not in container, f"{label} overrides the image's entrypoint")
            check(
                container["securityContext"].get("readOnlyRootFilesystem") is True
                and container["securityContext"].get("allowPrivilegeEscalation") is False,
                f"{label}: securityContext not hardened",
            )
            known = flags_in_help(binary, args[0])
            for arg in args[1:]:
                flag = arg.split("=", 1)[0]
                check(flag in known, f"{label}: {flag} is not a flag of hydrant {args[0]}")
            accepted_by_binary(binary, args, label)
        if omit:
            check(
                not {"runAsUser", "runAsGroup", "fsGroup"} & set(spec["securityContext"])
                and spec["securityContext"]["runAsNonRoot"] is True,
                f"{name}: {pod_name} sets ids although runAs.omit (OpenShift assigns them)",
            )
        else:
            check(
                spec["securityContext"]["runAsUser"] == 65532,
                f"{name}: pods do not run as the image's user 65532",
            )


def check_vault_ca(binary, values, docs):
    """vault.caBundle reaches the webhook as the file its flag names, the agents it injects, and
    the controller's own Vault connection."""
    bundle = values["vault"]["caBundle"]
    maps = {d["metadata"]["name"]: d for d in by_kind(docs, "ConfigMap")}
    ca_map = maps.get(f"{RELEASE}-vault-ca")
    if not check(ca_map and ca_map["data"]["ca.crt"] == bundle, "vault.caBundle is not in a ConfigMap"):
        return
    webhook = next(d for d in by_kind(docs, "Deployment") if d["metadata"]["name"].endswith("-webhook"))
    pod = webhook["spec"]["template"]["spec"]
    container = pod["containers"][0]
    flag = next((a.split("=", 1)[1] for a in container["args"] if a.startswith("--vault-ca-cert=")), "")
    volume = next((v["name"] for v in pod["volumes"] if v.get("configMap", {}).get("name") == ca_map["metadata"]["name"]), None)
    mounts = [m["mountPath"] for m in container["volumeMounts"] if m["name"] == volume]
    check(
        mounts and flag == f"{mounts[0]}/ca.crt",
        f"the webhook's --vault-ca-cert={flag} is not the mounted ConfigMap's ca.crt ({mounts})",
    )
    check(
        "checksum/vault-ca" in webhook["spec"]["template"]["metadata"].get("annotations", {}),
        "a new vault.caBundle does not roll the webhook, which reads it once",
    )
    with tempfile.TemporaryDirectory() as tmp:
        ca = pathlib.Path(tmp) / "ca.crt"
        ca.write_text(ca_map["data"]["ca.crt"])
        pod_file = pathlib.Path(tmp) / "pod.yaml"
        pod_file.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "app", "annotations": {
                "vault.hashicorp.com/agent-inject": "true",
                "vault.hashicorp.com/role": "app",
                "vault.hashicorp.com/agent-inject-secret-db": "secret/data/app/db"}},
            "spec": {"containers": [{"name": "app", "image": "app:1"}]},
        }))
        run = subprocess.run(
            [binary, "inject", "-f", str(pod_file), "--vault-addr", values["vault"]["address"], f"--vault-ca-cert={ca}"],
            capture_output=True, text=True,
        )
        if check(run.returncode == 0, f"hydrant inject with the chart's Vault CA: {run.stderr}"):
            out = yaml.safe_load(run.stdout)
            configs = [
                json.loads(e["value"])
                for c in out["spec"].get("initContainers", []) + out["spec"]["containers"]
                for e in c.get("env", []) if e["name"] == "HYDRANT_AGENT_CONFIG"
            ]
            check(
                configs and all(c["vault"].get("ca_cert_pem") == bundle for c in configs),
                "the injected agents do not get the chart's Vault CA",
            )
    controller = maps.get(f"{RELEASE}-controller")
    if check(controller is not None, "no controller ConfigMap"):
        vault = yaml.safe_load(controller["data"]["vault.yaml"])["vault"]
        check(vault.get("ca_cert_pem") == bundle, "the controller does not trust vault.caBundle")


def check_install_examples(binary):
    """The README's install walk-through: the values install the chart; every manifest is valid,
    and so is what `hydrant inject` (the webhook's mutation, offline) makes of it."""
    examples = ROOT / "examples" / "install"
    values = yaml.safe_load((examples / "values.yaml").read_text())
    docs, _ = render(values)
    check_documents("examples/install/values.yaml", docs, binary, values)
    injected = {}
    for path in sorted(examples.glob("0*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            for version in VERSIONS:
                try:
                    kubernetes_validate.validate(doc, version, strict=True)
                except kubernetes_validate.ValidationError as e:
                    failures.append(f"{path.name} is invalid for Kubernetes {version}: {e.message}")
        if doc["kind"] == "Namespace":
            labels = doc["metadata"]["labels"]
            check(
                labels.get(values.get("injection", {}).get("optInLabel", {}).get("key", "hydrant.dev/injection")) == "enabled",
                f"{path.name} does not opt in",
            )
            continue
        run = subprocess.run(
            [binary, "inject", "-f", str(path), "--vault-addr", values["vault"]["address"]],
            capture_output=True,
            text=True,
        )
        if not check(run.returncode == 0, f"hydrant inject {path.name}: {run.stderr}"):
            continue
        out = yaml.safe_load(run.stdout)
        injected[path.name] = out
        for version in VERSIONS:
            try:
                kubernetes_validate.validate(out, version, strict=True)
            except kubernetes_validate.ValidationError as e:
                failures.append(f"{path.name} injected is invalid for Kubernetes {version}: {e.message}")
    def pod(name):
        spec = injected[name]["spec"]
        return spec["jobTemplate"]["spec"]["template"]["spec"] if "jobTemplate" in spec else spec["template"]["spec"]
    def agent_config(name):
        for c in pod(name).get("initContainers", []) + pod(name)["containers"]:
            for env in c.get("env", []):
                if env["name"] == "HYDRANT_AGENT_CONFIG":
                    return json.loads(env["value"])
        return {}
    if check(len(injected) == 4, f"{len(injected)} of 4 examples injected"):
        config = agent_config("02-vault-k8s-deployment.yaml")
        check(
            sorted(s["path"] for s in config.get("secrets", []))
            == ["database/creds/team-a_app", "secret/data/team-a/orders"],
            "the vault-k8s annotations did not become the agent's secrets",
        )
        native = [c for c in pod("03-hydrant-deployment.yaml").get("initContainers", []) if c.get("restartPolicy") == "Always"]
        check(len(native) == 1, "the hydrant-annotated Deployment has no native agent")
        job = pod("04-job.yaml")
        check(
            job["restartPolicy"] == "Never"
            and len(job["containers"]) == 1
            and not any(c.get("restartPolicy") == "Always" for c in job.get("initContainers", [])),
            "the Job got a long-running agent",
        )
        config = agent_config("05-config-snapshot.yaml")
        check(config.get("config", {}).get("schema"), "the config snapshot has no schema")


def check_vault_helm_values(docs):
    """ci/vault-helm-values.yaml: every value vault-helm and external-secrets users reach for
    lands where it should, over the chart's defaults rather than instead of them."""
    webhook = next(d for d in by_kind(docs, "Deployment") if d["metadata"]["name"].endswith("-webhook"))
    template = webhook["spec"]["template"]
    pod = template["spec"]
    container = pod["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    check(
        env.get("HTTPS_PROXY", {}).get("value") == "http://proxy.example.com:3128"
        and env.get("GOMAXPROCS_HINT", {}).get("valueFrom", {}).get("resourceFieldRef", {}).get("resource") == "limits.cpu"
        and "HYDRANT_LOG" in env,
        f"extraEnv / extraEnvironmentVars not added to the webhook's env: {sorted(env)}",
    )
    check(
        template["metadata"]["labels"].get("team") == "platform"
        and template["metadata"]["labels"].get("app.kubernetes.io/component") == "webhook",
        "podLabels not on the webhook pods",
    )
    check(template["metadata"]["annotations"].get("example.com/scrape") == "false", "podAnnotations not on the pods")
    service = next(d for d in by_kind(docs, "Service") if d["metadata"]["name"].endswith("-webhook"))
    check(service["metadata"].get("annotations") == {"example.com/service": "webhook"}, "webhook.service.annotations")
    account = next(d for d in by_kind(docs, "ServiceAccount") if d["metadata"]["name"].endswith("-webhook"))
    check(
        account["metadata"].get("annotations", {}).get("eks.amazonaws.com/role-arn", "").endswith(":role/hydrant"),
        "webhook.serviceAccount.annotations",
    )
    config = by_kind(docs, "MutatingWebhookConfiguration")[0]
    check(config["metadata"].get("annotations", {}).get("example.com/owner") == "platform", "injection.annotations")
    entry = config["webhooks"][0]
    check(entry["failurePolicy"] == "Ignore", "injection.failurePolicy Ignore not used")
    selector = entry["namespaceSelector"]
    check(
        selector.get("matchLabels") == {"vault-injection": "enabled"}
        and any(e["key"] == "kubernetes.io/metadata.name" and e["operator"] == "NotIn" for e in selector["matchExpressions"]),
        f"a raw namespaceSelector drops the chart's exclusions or is not used: {selector}",
    )
    check(
        entry["objectSelector"] == {"matchExpressions": [{"key": "vault-sidecar-injector", "operator": "NotIn", "values": ["disabled"]}]},
        f"injection.objectSelector not used: {entry['objectSelector']}",
    )
    check(
        pod["securityContext"].get("fsGroupChangePolicy") == "OnRootMismatch"
        and pod["securityContext"].get("runAsNonRoot") is True
        and pod["securityContext"].get("seccompProfile") == {"type": "RuntimeDefault"},
        "podSecurityContext replaces the chart's defaults instead of adding to them",
    )
    check(
        container["securityContext"].get("privileged") is False
        and container["securityContext"].get("readOnlyRootFilesystem") is True
        and container["securityContext"].get("capabilities") == {"drop": ["ALL"]},
        "securityContext replaces the chart's hardening instead of adding to it",
    )
    live, ready = container["livenessProbe"], container["readinessProbe"]
    check(
        live["periodSeconds"] == 20 and live["failureThreshold"] == 6 and live["httpGet"]["path"] == "/healthz"
        and ready["initialDelaySeconds"] == 2 and ready["httpGet"]["path"] == "/readyz",
        f"probe overrides lost the probe or were not applied: {live} {ready}",
    )
    check(
        pod.get("hostNetwork") is True and pod.get("dnsPolicy") == "ClusterFirstWithHostNet"
        and "--listen=0.0.0.0:9443" in container["args"]
        and container["ports"][0]["containerPort"] == 9443,
        "hostNetwork on port 9443 not rendered",
    )
    check(
        webhook["spec"].get("strategy", {}).get("rollingUpdate") == {"maxUnavailable": 0, "maxSurge": 1},
        "webhook.strategy not used",
    )
    check(
        not by_kind(docs, "PodDisruptionBudget"),
        "a PodDisruptionBudget with one replica blocks every node drain",
    )


def check_service_monitor_labels():
    """metrics.serviceMonitor.labels reach the ServiceMonitor. The offline render has no
    cluster to say it serves monitoring.coreos.com/v1, so a copy of the chart claims it does."""
    with tempfile.TemporaryDirectory() as tmp:
        copy = pathlib.Path(tmp) / "hydrant"
        shutil.copytree(CHART, copy)
        template = copy / "templates" / "servicemonitor.yaml"
        text = template.read_text()
        claim = '(.Capabilities.APIVersions.Has "monitoring.coreos.com/v1")'
        if not check(claim in text, "servicemonitor.yaml no longer checks the API version"):
            return
        template.write_text(text.replace(claim, "true"))
        values = {"metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}}}}
        rendered = Chart.load(str(copy)).render(values, name=RELEASE, namespace=NAMESPACE)
        docs = [d for p, t in rendered.items() if p.endswith(".yaml") for d in yaml.safe_load_all(t) if d]
        monitors = by_kind(docs, "ServiceMonitor")
        check(
            len(monitors) == 1 and monitors[0]["metadata"]["labels"].get("release") == "prometheus",
            "metrics.serviceMonitor.labels not on the ServiceMonitor",
        )


def main():
    binary = sys.argv[1]
    result = lint(str(CHART), strict=True)
    check(not result["errors"], f"helm lint: {result['errors']}")
    for message in result["messages"]:
        check(message["severity"] < 3, f"helm lint: {message}")

    value_sets = {"default": {}}
    for path in sorted((CHART / "ci").glob("*.yaml")):
        value_sets[path.name] = yaml.safe_load(path.read_text()) or {}
    check(len(value_sets) >= 5, "fewer values files under ci/ than the issue lists")
    rendered = {}
    notes_of = {}
    for name, values in value_sets.items():
        docs, notes = render(values)
        rendered[name] = docs
        notes_of[name] = notes
        check_documents(name, docs, binary, values)
        check("kubectl" in notes, f"{name}: NOTES.txt does not say how to check a pod")
        check("helm test" in notes, f"{name}: NOTES.txt does not mention helm test")
    # NOTES.txt names the agent container the mode really makes.
    check(
        "-c vault-agent\n" in notes_of["default"] and "vault-agent-init" not in notes_of["default"]
        and "hydrant-agent" not in notes_of["default"],
        "NOTES.txt does not name native mode's vault-agent",
    )
    check(
        "-c vault-agent-init\n" in notes_of["all-namespaces-values.yaml"],
        "NOTES.txt does not name init-and-sidecar mode's vault-agent-init",
    )

    # What the values select.
    default = rendered["default"]
    hook = by_kind(default, "MutatingWebhookConfiguration")[0]["webhooks"][0]
    check(hook["failurePolicy"] == "Fail", "default failurePolicy is not Fail")
    check(
        hook["namespaceSelector"].get("matchLabels") == {"hydrant.dev/injection": "enabled"},
        "namespaces do not opt in by default",
    )
    check(
        hook["objectSelector"]["matchExpressions"][0]["operator"] == "NotIn",
        "pods cannot opt out",
    )
    check(
        not by_kind(default, "ServiceMonitor"), "ServiceMonitor rendered without the CRD"
    )
    check(
        any(d["kind"] == "PodDisruptionBudget" for d in default), "no PodDisruptionBudget"
    )
    # No cert-manager needed by default: the webhook manages its certificates.
    check(
        not any(d["apiVersion"].startswith("cert-manager") for d in default)
        and "--self-managed-certificates" in by_kind(default, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]["args"],
        "the default install needs cert-manager",
    )
    webhook = by_kind(default, "Deployment")[0]
    check(webhook["spec"]["replicas"] == 2, "the webhook does not run 2 replicas")
    check(
        webhook["spec"]["template"]["spec"].get("topologySpreadConstraints"),
        "webhook replicas are not spread",
    )
    check(
        [d["metadata"]["name"] for d in by_kind(default, "ClusterRole")] == ["hydrant-webhook-certificates"],
        "RBAC without the controller beyond the self-managed certificates' own",
    )
    everything = rendered["all-namespaces-values.yaml"]
    hook = by_kind(everything, "MutatingWebhookConfiguration")[0]["webhooks"][0]
    check("matchLabels" not in hook["namespaceSelector"], "all namespaces still need a label")
    check(
        "monitoring" in hook["namespaceSelector"]["matchExpressions"][0]["values"],
        "excludeNamespaces not excluded",
    )
    args = by_kind(everything, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]["args"]
    check("--omit-run-as" in args, "runAs.omit does not omit")
    check("--agent-metrics-port=9102" in args, "agent.metricsPort does not reach the webhook")
    default_args = by_kind(default, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]["args"]
    check(
        not any(a.startswith("--agent-metrics-port") for a in default_args),
        "the agents' metrics are opened without agent.metricsPort",
    )
    secret = rendered["secret-values.yaml"]
    check(not any(d["apiVersion"].startswith("cert-manager") for d in secret), "secret mode renders cert-manager objects")
    hook = by_kind(secret, "MutatingWebhookConfiguration")[0]["webhooks"][0]
    check(hook["clientConfig"].get("caBundle", "").startswith("LS0t"), "secret mode without caBundle")
    issuer = rendered["cert-manager-issuer-values.yaml"]
    certs = [d for d in issuer if d["kind"] == "Certificate"]
    check(
        len(certs) == 1 and certs[0]["spec"]["issuerRef"]["kind"] == "ClusterIssuer",
        "issuerRef not used",
    )
    own = rendered["self-managed-values.yaml"]
    check(not any(d["apiVersion"].startswith("cert-manager") for d in own), "self-managed renders cert-manager objects")
    rules = {d["kind"]: d["rules"] for d in own if d["kind"] in ("Role", "ClusterRole")}
    check(
        rules.get("ClusterRole")
        == [{"apiGroups": ["admissionregistration.k8s.io"], "resources": ["mutatingwebhookconfigurations"],
             "resourceNames": ["hydrant-webhook"], "verbs": ["get", "update"]}],
        "self-managed certificates may touch more than their own webhook configuration",
    )
    named = [r for r in rules.get("Role", []) if "resourceNames" in r]
    check(
        sorted(n for r in named for n in r["resourceNames"]) == ["hydrant-webhook-certificates", "hydrant-webhook-tls"]
        and all(r["verbs"] == ["create"] for r in rules.get("Role", []) if "resourceNames" not in r),
        "self-managed certificates may read or change more than their Secret and Lease",
    )
    pod = by_kind(own, "Deployment")[0]["spec"]["template"]["spec"]
    check(pod["automountServiceAccountToken"] is True, "self-managed webhook has no API token")
    check("emptyDir" in pod["volumes"][0], "self-managed certificates are not written to an emptyDir")
    check(
        by_kind(rendered["cert-manager-values.yaml"], "Deployment")[0]["spec"]["template"]["spec"]["automountServiceAccountToken"] is False,
        "the webhook gets an API token it does not use",
    )
    check_vault_helm_values(rendered["vault-helm-values.yaml"])
    low = by_kind(rendered["privileged-port-values.yaml"], "Deployment")[0]["spec"]["template"]["spec"]
    check(
        low["securityContext"].get("sysctls") == [{"name": "net.ipv4.ip_unprivileged_port_start", "value": "443"}]
        and "--listen=0.0.0.0:443" in low["containers"][0]["args"],
        "a webhook port below 1024 cannot be bound by the non-root webhook",
    )
    check(
        "sysctls" not in by_kind(default, "Deployment")[0]["spec"]["template"]["spec"]["securityContext"],
        "the default webhook port gets a sysctl",
    )
    for port in (443, 10250):
        try:
            render({"webhook": {"hostNetwork": True, "port": port}})
            failures.append(f"the chart renders hostNetwork on port {port}")
        except Exception as e:
            check("webhook.port" in str(e), f"the refusal of hostNetwork on {port} does not name webhook.port: {e}")
    check_service_monitor_labels()
    controller = rendered["controller-values.yaml"]
    roles = {d["kind"]: d for d in controller if d["kind"] in ("Role", "ClusterRole")}
    check(
        roles.get("ClusterRole", {}).get("rules")
        == [{"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "list", "watch"]}],
        "the controller's ClusterRole is more than reading Namespaces",
    )
    role_rules = roles.get("Role", {}).get("rules", [])
    check(
        {r["resources"][0] for r in role_rules} == {"leases", "events"}
        and all(
            r["verbs"] == ["create", "patch"] and r["apiGroups"] == ["events.k8s.io"]
            for r in role_rules
            if r["resources"] == ["events"]
        ),
        "the controller's Role is more than its Lease and creating its Events",
    )
    container = next(
        d for d in by_kind(controller, "Deployment") if d["metadata"]["name"].endswith("-controller")
    )["spec"]["template"]["spec"]["containers"][0]
    downward = {e["name"]: e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") for e in container["env"]}
    check(
        "--events" in container["args"]
        and downward.get("POD_NAME") == "metadata.name"
        and downward.get("POD_NAMESPACE") == "metadata.namespace"
        and downward.get("POD_UID") == "metadata.uid",
        "the controller does not publish Events about its own Pod",
    )

    check_vault_ca(binary, value_sets["controller-values.yaml"], controller)
    check(
        not any(d["metadata"]["name"].endswith("-vault-ca") for d in default),
        "a Vault CA ConfigMap without vault.caBundle",
    )
    bundle = value_sets["controller-values.yaml"]["vault"]["caBundle"]
    # Without a final newline (--set, or |- in a values file) the PEM is indented the same.
    trimmed = dict(value_sets["controller-values.yaml"], vault={"address": "https://vault:8200", "caBundle": bundle.rstrip("\n")})
    docs, _ = render(trimmed)
    maps = {d["metadata"]["name"]: d for d in by_kind(docs, "ConfigMap")}
    check(
        maps[f"{RELEASE}-vault-ca"]["data"]["ca.crt"].rstrip("\n") == bundle.rstrip("\n")
        and yaml.safe_load(maps[f"{RELEASE}-controller"]["data"]["vault.yaml"])["vault"]["ca_cert_pem"].rstrip("\n") == bundle.rstrip("\n"),
        "a vault.caBundle without a final newline is rendered differently",
    )
    controllers = [d for d in by_kind(docs, "Deployment") if d["metadata"]["name"].endswith("-controller")]
    check(
        controllers and "checksum/vault" in controllers[0]["spec"]["template"]["metadata"].get("annotations", {}),
        "a new Vault CA or address does not roll the controller, which reads them once",
    )
    for bad_ca in (
        {"vault": {"address": "http://vault:8200", "caBundle": bundle}},
        {"vault": {"address": "https://vault:8200", "caBundle": "/etc/ssl/vault-ca.pem"}},
        {"vault": {"address": "https://vault:8200", "caBundle": bundle + "-----BEGIN PRIVATE KEY-----\nMIGH\n-----END PRIVATE KEY-----\n"}},
    ):
        try:
            render(bad_ca)
            failures.append(f"the chart renders {bad_ca}")
        except Exception as e:
            check("vault.caBundle" in str(e), f"the refusal of {bad_ca} does not name vault.caBundle: {e}")

    # values.schema.json refuses wrong types and unknown keys.
    chart = Chart.load(str(CHART))
    for bad in (
        {"webhook": {"hostNetwork": "yes"}},
        {"webhook": {"extraEnvironmentVars": {"A": 1}}},
        {"webhook": {"livenessProbe": {"periodSecond": 5}}},
        {"injection": {"namespaceSelector": {"matchLabel": {"a": "b"}}}},
        {"metrics": {"serviceMonitor": {"labels": {"release": 1}}}},
        {"webhook": {"replicas": "two"}},
        {"injection": {"failurePolicy": "Sometimes"}},
        {"replica": 3},
        {"controller": {"enabled": True}},
        {"certificates": {"mode": "secret"}},
        {"controller": {"pollInterval": 60}},
    ):
        try:
            chart.validate_schema(bad)
            failures.append(f"values.schema.json accepts {bad}")
        except Exception:
            pass

    # The Dockerfile builds what the chart runs.
    dockerfile = (ROOT / "Dockerfile").read_text()
    check(
        'ENTRYPOINT ["/usr/local/bin/hydrant"]' in dockerfile,
        "the Dockerfile's entrypoint is not /usr/local/bin/hydrant",
    )
    check(re.search(r"^USER 65532:65532$", dockerfile, re.M), "the image's user is not 65532")
    check(
        "release/hydrant /hydrant" in dockerfile
        and "COPY --from=build /hydrant /usr/local/bin/hydrant" in dockerfile,
        "the Dockerfile does not ship the hydrant binary",
    )
    check("distroless" in dockerfile, "the runtime stage is not distroless")
    cargo = (ROOT / "Cargo.toml").read_text()
    check('name = "hydrant"' in cargo, "the package's binary is not named hydrant")

    check_install_examples(binary)

    if failures:
        print(f"{len(failures)} chart failure(s):")
        for f in failures:
            print(f"  - {f}")
        sys.exit(1)
    print(f"chart ok: {len(value_sets)} values sets, Kubernetes {', '.join(VERSIONS)}")


if __name__ == "__main__":
    main()
