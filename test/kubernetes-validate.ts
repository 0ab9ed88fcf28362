// Validates rendered Kubernetes objects against the real schemas of kubernetes-models and the CRD
// models of CloudNativePG, Traefik, External Secrets and Argo CD (used by tests and bench/render).
import { Application } from "@kubernetes-models/argo-cd/argoproj.io/v1alpha1";
import { Cluster, ScheduledBackup } from "@kubernetes-models/cloudnative-pg/postgresql.cnpg.io/v1";
import { ExternalSecret } from "@kubernetes-models/external-secrets/external-secrets.io/v1";
import { IngressRoute, Middleware, TLSOption } from "@kubernetes-models/traefik/traefik.io/v1alpha1";
import { Deployment } from "kubernetes-models/apps/v1";
import { CronJob } from "kubernetes-models/batch/v1";
import { Stanza } from "./pgbackrest-stanza-model.js";
import { NetworkPolicy } from "kubernetes-models/networking.k8s.io/v1";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1";
import {
  ConfigMap,
  LimitRange,
  Namespace,
  PersistentVolumeClaim,
  ResourceQuota,
  Service,
  ServiceAccount,
} from "kubernetes-models/v1";

type TModel = new (data: never) => { validate(): void };

const MODELS: Record<string, TModel> = {
  "v1/Namespace": Namespace,
  "v1/ServiceAccount": ServiceAccount,
  "v1/ResourceQuota": ResourceQuota,
  "v1/LimitRange": LimitRange,
  "v1/ConfigMap": ConfigMap,
  "v1/Service": Service,
  "v1/PersistentVolumeClaim": PersistentVolumeClaim,
  "apps/v1/Deployment": Deployment,
  "batch/v1/CronJob": CronJob,
  "pgbackrest.dalibo.com/v1/Stanza": Stanza,
  "networking.k8s.io/v1/NetworkPolicy": NetworkPolicy,
  "policy/v1/PodDisruptionBudget": PodDisruptionBudget,
  "postgresql.cnpg.io/v1/Cluster": Cluster,
  "postgresql.cnpg.io/v1/ScheduledBackup": ScheduledBackup,
  "traefik.io/v1alpha1/Middleware": Middleware,
  "traefik.io/v1alpha1/IngressRoute": IngressRoute,
  "traefik.io/v1alpha1/TLSOption": TLSOption,
  "external-secrets.io/v1/ExternalSecret": ExternalSecret,
  "argoproj.io/v1alpha1/Application": Application,
};

/** Throws, naming the object, when it does not match its schema or its kind has no model here. */
export function validateKubernetesObject(object: {
  apiVersion: string;
  kind: string;
  metadata: { name: string };
}): void {
  const key = `${object.apiVersion}/${object.kind}`;
  const Model = MODELS[key];
  if (Model === undefined) throw new Error(`no schema for ${key} (${object.metadata.name})`);
  try {
    new Model(object as never).validate();
  } catch (error) {
    throw new Error(`${key} ${object.metadata.name}: ${error instanceof Error ? error.message : String(error)}`);
  }
}
