// What an environment's `hosting` makes of its data tier's instances: a dedicated environment gets
// a PostgreSQL cluster and a Redis of its own, named after it; the shared environments of an
// organization share one of each. Pure naming, in one place, so the local runtime's placement and
// the recovery service's operation targets (one backup, restore or drill of a cluster at a time)
// agree on which environments share a cluster.
import type { TEnvironmentSpec } from "./spec-schema.js";

export const SHARED_INSTANCE = "shared";

export const instanceNameOf = (environment: TEnvironmentSpec) =>
  environment.hosting === "dedicated" ? `dedicated-${environment.name}` : SHARED_INSTANCE;
