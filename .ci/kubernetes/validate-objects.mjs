// Validates objects read as a JSON array on stdin against the schemas of their custom
// resources as packaged by @kubernetes-models (types, required fields, patterns, limits),
// one line per object; exits 1 if any fails. Shared by validate-gateway.mjs and
// validate-gitops.mjs, which say which models they know.
import { readFileSync } from "node:fs";

// `models`: "apiVersion Kind" → the model class.
export function validateStdin(models) {
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
}
