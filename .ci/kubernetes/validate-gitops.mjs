// Validates the objects curfew patches around a stop and a start, as the API server holds
// them afterwards, against the schemas of their CRDs as packaged on npm: Argo CD
// Applications (@kubernetes-models/argo-cd), Flux Kustomizations and HelmReleases
// (@kubernetes-models/flux-cd), KEDA ScaledObjects (@kubernetes-models/keda) and Argo
// Rollouts (@kubernetes-models/argo-rollouts). Reads a JSON array of objects on stdin;
// src/platform/kubernetes/tests/gitops.rs feeds it what the adapter left on the fake API
// server after a stop and after a start.
import { Application } from "@kubernetes-models/argo-cd/argoproj.io/v1alpha1/Application";
import { Rollout } from "@kubernetes-models/argo-rollouts/argoproj.io/v1alpha1/Rollout";
import { Kustomization } from "@kubernetes-models/flux-cd/kustomize.toolkit.fluxcd.io/v1/Kustomization";
import { HelmRelease } from "@kubernetes-models/flux-cd/helm.toolkit.fluxcd.io/v2/HelmRelease";
import { ScaledObject } from "@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject";
import { validateStdin } from "./validate-objects.mjs";

validateStdin({
  "argoproj.io/v1alpha1 Application": Application,
  "argoproj.io/v1alpha1 Rollout": Rollout,
  "kustomize.toolkit.fluxcd.io/v1 Kustomization": Kustomization,
  "helm.toolkit.fluxcd.io/v2 HelmRelease": HelmRelease,
  "keda.sh/v1alpha1 ScaledObject": ScaledObject,
});
