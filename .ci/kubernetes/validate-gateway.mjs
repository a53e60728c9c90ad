// Validates the Gateway API objects curfew writes at run time (an HTTPRoute sent to the wake
// Service, the ReferenceGrant that allows it) against the schemas of the Gateway API's CRDs
// as packaged by @kubernetes-models/gateway-api (types, required fields, patterns, limits).
// Reads a JSON array of objects on stdin; src/platform/kubernetes/tests/wake.rs feeds it
// the objects the adapter wrote to the fake API server.
import { readFileSync } from "node:fs";
import { HTTPRoute } from "@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/HTTPRoute";
import { ReferenceGrant } from "@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1beta1/ReferenceGrant";

const models = {
  "gateway.networking.k8s.io/v1 HTTPRoute": HTTPRoute,
  "gateway.networking.k8s.io/v1beta1 ReferenceGrant": ReferenceGrant,
};

const objects = JSON.parse(readFileSync(0, "utf8"));
let failed = 0;
for (const object of objects) {
  const key = `${object.apiVersion} ${object.kind}`;
  const name = `${object.kind}/${object.metadata?.name}`;
  const Model = models[key];
  let error = Model ? null : `no schema for ${key}`;
  if (Model) {
    // The server's own fields are not the client's to validate.
    const { status, ...rest } = object;
    const metadata = { name: rest.metadata.name, namespace: rest.metadata.namespace,
      labels: rest.metadata.labels, annotations: rest.metadata.annotations };
    try {
      new Model({ ...rest, metadata }).validate();
    } catch (e) {
      error = e.message;
    }
  }
  if (error) {
    failed++;
    console.log(`ERROR ${name}: ${error}`);
  } else {
    console.log(`ok    ${name} (${key} schema)`);
  }
}
process.exit(failed ? 1 : 0);
