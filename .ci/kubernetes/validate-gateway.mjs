// Validates the Gateway API objects curfew writes at run time (an HTTPRoute sent to the wake
// Service, the ReferenceGrant that allows it) against the schemas of the Gateway API's CRDs
// as packaged by @kubernetes-models/gateway-api (types, required fields, patterns, limits).
// Reads a JSON array of objects on stdin; src/platform/kubernetes/tests/wake.rs feeds it
// the objects the adapter wrote to the fake API server.
import { HTTPRoute } from "@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/HTTPRoute";
import { ReferenceGrant } from "@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1beta1/ReferenceGrant";
import { validateStdin } from "./validate-objects.mjs";

validateStdin({
  "gateway.networking.k8s.io/v1 HTTPRoute": HTTPRoute,
  "gateway.networking.k8s.io/v1beta1 ReferenceGrant": ReferenceGrant,
});
