// Validates the Prometheus Operator's custom resources (ServiceMonitor, PrometheusRule)
// that `kubectl kustomize` rendered, against the schemas of the operator's CRDs as
// packaged by @kubernetes-models/prometheus-operator (types, required fields, patterns),
// and refuses fields that the CRD's types do not declare (as `kubectl apply` does with
// the API server's strict field validation). Reads a JSON array of objects on stdin.
import { readFileSync } from "node:fs";
import { ServiceMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor";
import { PrometheusRule } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule";

const types = new URL(
  "./node_modules/@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/",
  import.meta.url,
);

// The fields a type declares, its parents' included, read from its .d.ts file.
function fields(type) {
  const text = readFileSync(new URL(`${type}.d.ts`, types), "utf8");
  const names = new Set([...text.matchAll(/^ {4}"([^"]+)"\??:/gm)].map((m) => m[1]));
  const parents = text.match(/export interface I\w+ extends ([\w, ]+) \{/);
  for (const parent of parents ? parents[1].split(",") : []) {
    const local = parent.trim().match(/^IComGithubPrometheusOperatorPrometheusOperatorPkgApisMonitoringV1(\w+)$/);
    if (local) for (const name of fields(local[1])) names.add(name);
  }
  if (names.size === 0) throw new Error(`no fields found for ${type}`);
  return names;
}

function strict(value, type, path, errors) {
  const known = fields(type);
  for (const key of Object.keys(value ?? {})) {
    if (!known.has(key)) errors.push(`${path}.${key}: not a field of ${type}`);
  }
}

const kinds = {
  ServiceMonitor: {
    model: ServiceMonitor,
    strict: (o, errors) => {
      strict(o.spec, "ServiceMonitorSpec", "spec", errors);
      (o.spec?.endpoints ?? []).forEach((e, i) => strict(e, "Endpoint", `spec.endpoints[${i}]`, errors));
    },
  },
  PrometheusRule: {
    model: PrometheusRule,
    strict: (o, errors) => {
      strict(o.spec, "PrometheusRuleSpec", "spec", errors);
      (o.spec?.groups ?? []).forEach((g, i) => {
        strict(g, "RuleGroup", `spec.groups[${i}]`, errors);
        (g.rules ?? []).forEach((r, j) => strict(r, "Rule", `spec.groups[${i}].rules[${j}]`, errors));
      });
    },
  },
};

const objects = JSON.parse(readFileSync(0, "utf8"));
let failed = 0;
for (const object of objects) {
  const name = `${object.kind}/${object.metadata?.name}`;
  const kind = kinds[object.kind];
  const errors = [];
  if (!kind || object.apiVersion !== "monitoring.coreos.com/v1") {
    errors.push(`no schema for ${object.apiVersion} ${object.kind}`);
  } else {
    try {
      new kind.model(object).validate();
    } catch (e) {
      errors.push(e.message);
    }
    kind.strict(object, errors);
  }
  if (errors.length) {
    failed++;
    console.log(`ERROR ${name}: ${errors.join("; ")}`);
  } else {
    console.log(`ok    ${name} (monitoring.coreos.com/v1 schema)`);
  }
}
process.exit(failed ? 1 : 0);
