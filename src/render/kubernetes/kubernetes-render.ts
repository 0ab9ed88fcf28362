// Renders one environment as Kubernetes manifests, one file per object. Pure and deterministic
// (STYLE.md item 6): the same spec gives the same bytes, so an unchanged spec makes no GitOps commit.
import type { TEnvironmentRenderer, TRenderedFile } from "../render-types.js";
import type { TOrganizationSpec } from "../../spec/spec-schema.js";
import { fileNameOf, namespaceOf, toYaml } from "./kubernetes-common.js";
import type { TKubernetesObject } from "./kubernetes-common.js";
import { backupObjects } from "./kubernetes-backup.js";
import { postgresObjects, redisObjects } from "./kubernetes-data.js";
import { edgeObjects } from "./kubernetes-edge.js";
import { namespaceObjects } from "./kubernetes-namespace.js";
import { odooObjects } from "./kubernetes-odoo.js";

/** Every object of one environment, in a fixed order (namespace first, so a plain kubectl apply works too). */
export function kubernetesObjects(organization: TOrganizationSpec, environmentName: string): TKubernetesObject[] {
  const environment = organization.environments.find((item) => item.name === environmentName);
  if (environment === undefined) {
    throw new TypeError(
      `environment ${JSON.stringify(environmentName)} is not in ${organization.metadata.name} (known: ${organization.environments.map((item) => item.name).join(", ")})`,
    );
  }
  const context = { organization, environment, namespace: namespaceOf(organization, environment) };
  return [
    ...namespaceObjects(context),
    ...odooObjects(context),
    ...postgresObjects(context),
    ...redisObjects(context),
    ...backupObjects(context),
    ...edgeObjects(context),
  ];
}

export const renderKubernetesEnvironment: TEnvironmentRenderer = (
  organization,
  environmentName,
): readonly TRenderedFile[] => renderKubernetesObjects(kubernetesObjects(organization, environmentName));

/** The files of objects already built (bench/render validates the objects and renders them in one pass). */
export const renderKubernetesObjects = (objects: readonly TKubernetesObject[]): TRenderedFile[] =>
  objects.map((object) => ({ path: fileNameOf(object), content: toYaml(object) }));
