"""Renders deploy/kubernetes (the base and every overlay) with `kubectl kustomize` and checks
every object it produces:

- built-in kinds against the Kubernetes OpenAPI schemas, strictly (unknown fields are
  errors), with kubernetes-validate, for the oldest and newest Kubernetes versions below;
- the Prometheus Operator's kinds (ServiceMonitor, PrometheusRule) against the operator's
  CRD schemas, by validate-crds.mjs (Node);
- what the schemas cannot say: the pod runs as the issue asks (one replica, Recreate,
  probes, a locked-down security context), every name it refers to exists in the render,
  the rule file in the ConfigMap passes `curfew validate`, and the PrometheusRule carries
  exactly deploy/prometheus/curfew-alerts.yaml;
- for the Kubernetes platform (a rule file with `platform: {kubernetes: …}`): the roles
  name no wildcard and no built-in role, are bound to curfew's service account, and the pod
  mounts that account's token (src/platform/kubernetes/tests/mod.rs checks that the roles grant
  exactly what the adapter does); and the ValidatingAdmissionPolicy that holds curfew to
  its own writes (components/admission-policy) is bound, applies to that account, checks
  the label the rule file's namespace_selector requires, and covers every write the
  ClusterRole grants. Its CEL is not run here (that needs an API server): the adapter's
  tests run it on every write curfew makes (src/platform/kubernetes/tests/rules.rs).

Environment: KUBECTL (a kubectl with kustomize), CURFEW (the built binary), NODE.
"""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parents[2]
KUBECTL = os.environ.get("KUBECTL", "kubectl")
CURFEW = os.environ.get("CURFEW", str(ROOT / "target/debug/curfew"))
NODE = os.environ.get("NODE", "node")
# The oldest Kubernetes still commonly run, and the newest the schemas know.
KUBERNETES_VERSIONS = ["1.29.0", kubernetes_validate.latest_version()]
CRD_GROUP = "monitoring.coreos.com/v1"
EXPECTED_KINDS = {
    "Namespace", "ServiceAccount", "ConfigMap", "Service", "PersistentVolumeClaim",
    "Deployment", "ServiceMonitor", "PrometheusRule",
}
# Added by components/kubernetes-platform, for the Kubernetes platform only.
RBAC_KINDS = {"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}
# Added by components/admission-policy, the default for the Kubernetes platform.
ADMISSION_KINDS = {"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"}
# Added by components/wake-on-request: the wake Service (a second Service) and the policy.
WAKE_KINDS = {"NetworkPolicy"}
# admissionregistration.k8s.io/v1 has them from Kubernetes 1.30 on.
ADMISSION_SINCE = (1, 30)
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding"} | ADMISSION_KINDS
# RBAC verbs that write, and the admission operation each request is.
WRITE_OPERATIONS = {"create": "CREATE", "update": "UPDATE", "patch": "UPDATE", "delete": "DELETE"}


def kustomizations():
    base = ROOT / "deploy/kubernetes/base"
    overlays = sorted((ROOT / "deploy/kubernetes/overlays").iterdir())
    return [base] + [o for o in overlays if (o / "kustomization.yaml").exists()]


def render(path):
    out = subprocess.run([KUBECTL, "kustomize", str(path)], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"kubectl kustomize {path} failed:\n{out.stderr}")
    return [o for o in yaml.safe_load_all(out.stdout) if o]


def check_schemas(objects, errors):
    for obj in objects:
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        if obj["apiVersion"] == CRD_GROUP:
            continue
        versions = [v for v in KUBERNETES_VERSIONS if obj["kind"] not in ADMISSION_KINDS
                    or tuple(map(int, v.split(".")[:2])) >= ADMISSION_SINCE]
        if len(versions) < len(KUBERNETES_VERSIONS):
            print(f"note  {name}: needs Kubernetes 1.30, not checked against older schemas")
        for version in versions:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as e:
                path = ".".join(str(p) for p in e.path)
                errors.append(f"{name}: Kubernetes {version} schema: {path}: {e.message}")
            except kubernetes_validate.SchemaNotFoundError as e:
                errors.append(f"{name}: {e.message}")
        print(f"ok    {name} (Kubernetes {' and '.join(versions)} schemas, strict)")
    crds = [o for o in objects if o["apiVersion"] == CRD_GROUP]
    out = subprocess.run(
        [NODE, str(Path(__file__).with_name("validate-crds.mjs"))],
        input=json.dumps(crds), capture_output=True, text=True,
    )
    print(out.stdout, end="")
    if out.returncode != 0:
        errors.append(f"custom resources refused:\n{out.stdout}{out.stderr}")


def one(objects, kind, errors):
    found = [o for o in objects if o["kind"] == kind]
    if len(found) != 1:
        errors.append(f"expected one {kind}, found {len(found)}")
        return {}
    return found[0]


def check_pod(objects, errors):
    def expect(what, ok):
        if not ok:
            errors.append(f"Deployment: {what}")

    config_map = one(objects, "ConfigMap", errors)
    rules = {}
    for text in config_map.get("data", {}).values():
        rules = yaml.safe_load(text) or {}
    platform = rules.get("platform")
    kubernetes = isinstance(platform, dict) and "kubernetes" in platform
    waking = any(o["kind"] == "Service" and o["metadata"]["name"] == "curfew-wake" for o in objects)
    expected = (EXPECTED_KINDS | (RBAC_KINDS | ADMISSION_KINDS if kubernetes else set())
                | (WAKE_KINDS if waking else set()))
    kinds = {o["kind"] for o in objects}
    expect(f"kinds {sorted(kinds)} are {sorted(expected)}", kinds == expected)
    namespaces = {o["metadata"].get("namespace") for o in objects if o["kind"] not in CLUSTER_SCOPED}
    namespace = one(objects, "Namespace", errors)["metadata"]["name"]
    expect(f"every object in namespace {namespace}: {namespaces}", namespaces == {namespace})

    deployment = one(objects, "Deployment", errors)
    spec = deployment["spec"]
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    expect("one replica", spec["replicas"] == 1)
    expect("Recreate strategy", spec["strategy"]["type"] == "Recreate")
    expect("liveness on /healthz", container["livenessProbe"]["httpGet"]["path"] == "/healthz")
    expect("startup on /healthz", container["startupProbe"]["httpGet"]["path"] == "/healthz")
    expect("readiness on /readyz", container["readinessProbe"]["httpGet"]["path"] == "/readyz")
    resources = container.get("resources", {})
    expect("resource requests and limits", resources.get("requests") and resources.get("limits"))
    expect("pod runs as non-root", pod["securityContext"].get("runAsNonRoot") is True)
    expect("seccomp RuntimeDefault",
           pod["securityContext"].get("seccompProfile", {}).get("type") == "RuntimeDefault")
    sc = container["securityContext"]
    expect("no privilege escalation", sc.get("allowPrivilegeEscalation") is False)
    expect("read-only root filesystem", sc.get("readOnlyRootFilesystem") is True)
    expect("all capabilities dropped", sc.get("capabilities", {}).get("drop") == ["ALL"])
    expect("runs as non-root", sc.get("runAsNonRoot") is True)

    # Every name the pod refers to exists in the render.
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    claim = one(objects, "PersistentVolumeClaim", errors)
    account = one(objects, "ServiceAccount", errors)
    expect("service account exists", pod["serviceAccountName"] == account["metadata"]["name"])
    rules_mount = mounts.get("/etc/curfew", {})
    expect("rules mounted as a folder at /etc/curfew (no subPath: updates must reach it)",
           rules_mount and "subPath" not in rules_mount)
    rules_volume = volumes.get(rules_mount.get("name"), {})
    expect("the rules volume is the generated ConfigMap (its name carries the content's hash)",
           rules_volume.get("configMap", {}).get("name") == config_map["metadata"]["name"]
           and config_map["metadata"]["name"].startswith("curfew-rules-"))
    ledger_volume = volumes.get(mounts.get("/var/lib/curfew", {}).get("name"), {})
    expect("the ledger volume is the claim",
           ledger_volume.get("persistentVolumeClaim", {}).get("claimName") == claim["metadata"]["name"])
    args = container["args"]
    config_path = args[args.index("--config") + 1]
    expect(f"--config {config_path} is in the rules folder", config_path.startswith("/etc/curfew/"))
    file_name = config_path.rsplit("/", 1)[1]
    expect(f"the ConfigMap holds {file_name}", file_name in config_map.get("data", {}))
    token = [e for e in container.get("env", []) if e["name"] == "QOVERY_API_TOKEN"]
    if kubernetes:
        expect("no Qovery token for the Kubernetes platform", not token)
        expect("the pod mounts its service account's token (it calls the Kubernetes API)",
               pod.get("automountServiceAccountToken") is True)
        check_roles(objects, namespace, account["metadata"]["name"], expect)
        check_admission_policy(objects, namespace, account["metadata"]["name"],
                               platform["kubernetes"], expect)
    else:
        expect("the token comes from a Secret",
               token and token[0].get("valueFrom", {}).get("secretKeyRef", {}).get("name"))
        expect("the pod mounts no service account token (it calls Qovery, not Kubernetes)",
               pod.get("automountServiceAccountToken") is False)

    if waking:
        check_wake(objects, deployment, container, expect)

    # The Service reaches the pod, the ServiceMonitor the Service.
    service = one([o for o in objects if o["metadata"]["name"] != "curfew-wake"], "Service", errors)
    labels = spec["template"]["metadata"]["labels"]
    expect("the Service selects the pod",
           all(labels.get(k) == v for k, v in service["spec"]["selector"].items()))
    expect("the Deployment's selector selects its pods",
           all(labels.get(k) == v for k, v in spec["selector"]["matchLabels"].items()))
    monitor = one(objects, "ServiceMonitor", errors)
    service_labels = service["metadata"]["labels"]
    expect("the ServiceMonitor selects the Service",
           all(service_labels.get(k) == v
               for k, v in monitor["spec"]["selector"]["matchLabels"].items()))
    port_names = {p["name"] for p in service["spec"]["ports"]}
    expect("the ServiceMonitor scrapes a port of the Service",
           all(e["port"] in port_names for e in monitor["spec"]["endpoints"]))
    expect("the job label is `curfew`, as the alerts expect",
           service_labels.get(monitor["spec"].get("jobLabel")) == "curfew")

    rule = one(objects, "PrometheusRule", errors)
    alerts = yaml.safe_load((ROOT / "deploy/prometheus/curfew-alerts.yaml").read_text())
    expect("the PrometheusRule carries deploy/prometheus/curfew-alerts.yaml",
           rule.get("spec") == alerts)

    # The rule file, as the pod will read it.
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / file_name
        path.write_text(config_map["data"][file_name])
        out = subprocess.run([CURFEW, "validate", str(path)], capture_output=True, text=True)
        expect(f"curfew validate the ConfigMap's {file_name}:\n{out.stdout}{out.stderr}",
               out.returncode == 0)
        print(f"ok    ConfigMap/{config_map['metadata']['name']}: {out.stdout.strip()}")


def check_roles(objects, namespace, account, expect):
    """Least privilege: explicit verbs and resources, bound to curfew's account only."""
    roles = {(o["kind"], o["metadata"]["name"]): o for o in objects if o["kind"] in ("ClusterRole", "Role")}
    for role in roles.values():
        for rule in role.get("rules", []):
            for field in ("apiGroups", "resources", "verbs"):
                expect(f"{role['kind']}/{role['metadata']['name']}: no wildcard in {field}",
                       "*" not in rule.get(field, []))
            expect(f"{role['kind']}/{role['metadata']['name']}: no escalate, bind or impersonate",
                   not {"escalate", "bind", "impersonate"} & set(rule.get("verbs", [])))
    for binding in (o for o in objects if o["kind"] in ("ClusterRoleBinding", "RoleBinding")):
        ref = binding["roleRef"]
        name = f"{binding['kind']}/{binding['metadata']['name']}"
        expect(f"{name} binds a role of this render, not a built-in one ({ref['name']})",
               (ref["kind"], ref["name"]) in roles)
        expect(f"{name} binds curfew's service account only",
               binding.get("subjects") == [{"kind": "ServiceAccount", "name": account, "namespace": namespace}])


def cel_string(expression):
    """The text of a CEL string literal (`'curfew.dev/preview'`)."""
    text = expression.strip()
    return text[1:-1] if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"" else None


def check_wake(objects, deployment, container, expect):
    """The wake Service reaches the pod's public port and that port only; the NetworkPolicy
    selects the pod, admits to the public port only the ingress controller, and to the
    private port only Prometheus and curfew's own namespace."""
    wake = next(o for o in objects if o["kind"] == "Service" and o["metadata"]["name"] == "curfew-wake")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    expect("the wake Service selects the pod",
           all(labels.get(k) == v for k, v in wake["spec"]["selector"].items()))
    expect("the wake Service serves the public port only",
           [p["targetPort"] for p in wake["spec"]["ports"]] == ["public"] and "public" in ports)
    (policy,) = [o for o in objects if o["kind"] == "NetworkPolicy"]
    spec = policy["spec"]
    expect("the NetworkPolicy selects the pod",
           all(labels.get(k) == v for k, v in spec["podSelector"]["matchLabels"].items()))
    expect("the NetworkPolicy governs ingress", spec["policyTypes"] == ["Ingress"])
    by_port = {}
    for rule in spec["ingress"]:
        names = [p["port"] for p in rule.get("ports", [])]
        expect(f"each NetworkPolicy rule names its ports: {rule}", len(names) > 0)
        for name in names:
            by_port.setdefault(name, []).extend(rule.get("from", []))
    expect(f"the NetworkPolicy admits to exactly the public and private ports: {sorted(by_port)}",
           set(by_port) == {"public", "http"})
    namespaces = lambda peers: {p.get("namespaceSelector", {}).get("matchLabels", {})
                                .get("kubernetes.io/metadata.name") for p in peers}
    expect("only the ingress controller reaches the public port",
           namespaces(by_port.get("public", [])) == {"ingress-nginx"})
    expect("only Prometheus and curfew's namespace reach the private port",
           namespaces(by_port.get("http", [])) == {"monitoring", None}
           and {"podSelector": {}} in by_port.get("http", []))
    print("ok    wake on request: Service curfew-wake on the public port, NetworkPolicy")


def check_admission_policy(objects, namespace, account, kubernetes, expect):
    """The policy applies to curfew's account, checks the selector's label, and covers every
    write the ClusterRole grants (a write it did not cover would escape it)."""
    policies = [o for o in objects if o["kind"] == "ValidatingAdmissionPolicy"]
    bindings = [o for o in objects if o["kind"] == "ValidatingAdmissionPolicyBinding"]
    if len(policies) != 1 or len(bindings) != 1:
        expect("one ValidatingAdmissionPolicy and one binding", False)
        return
    policy, binding = policies[0], bindings[0]
    spec = policy["spec"]
    name = f"ValidatingAdmissionPolicy/{policy['metadata']['name']}"
    expect(f"{name} is bound, to deny", binding["spec"]["policyName"] == policy["metadata"]["name"]
           and "Deny" in binding["spec"]["validationActions"])
    expect(f"{name} fails closed", spec.get("failurePolicy") == "Fail")
    user = f"system:serviceaccount:{namespace}:{account}"
    expect(f"{name} applies to {user}",
           any(f"'{user}'" in c["expression"] for c in spec.get("matchConditions", [])))
    variables = {v["name"]: cel_string(v["expression"]) for v in spec.get("variables", [])}
    label, value = variables.get("label"), variables.get("value")
    terms = [t.strip().replace("==", "=") for t in kubernetes["namespace_selector"].split(",")]
    expect(f"{name} checks the label the namespace_selector requires ({label}={value})",
           f"{label}={value}" in terms)
    rules = spec["matchConstraints"]["resourceRules"]
    role = next(o for o in objects if o["kind"] == "ClusterRole")
    for rule in role["rules"]:
        for verb in set(rule["verbs"]) & set(WRITE_OPERATIONS):
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    covered = any(group in r["apiGroups"] and resource in r["resources"]
                                  and WRITE_OPERATIONS[verb] in r["operations"] for r in rules)
                    expect(f"{name} covers {verb} {resource}.{group or 'core'}", covered)
    print(f"ok    {name}: bound, for {user}, label {label}={value}, every write of the ClusterRole")


def main():
    failed = False
    for path in kustomizations():
        name = path.relative_to(ROOT)
        print(f"-- kubectl kustomize {name}")
        objects = render(path)
        errors = []
        check_schemas(objects, errors)
        check_pod(objects, errors)
        for e in errors:
            print(f"ERROR {name}: {e}")
        failed |= bool(errors)
        if not errors:
            print(f"{name}: {len(objects)} objects, all checks passed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
