// TEMPORARY PLACEHOLDER on branch render-compose — drop at merge in favour of the real Kubernetes
// renderer being written on branch render-kubernetes. It exists only so that render-targets.ts and
// `carehost render --target kubernetes` type-check here; it renders nothing.
import type { TEnvironmentRenderer } from "../render-types.js";

export const renderKubernetesEnvironment: TEnvironmentRenderer = () => {
  throw new Error("kubernetes renderer not built yet");
};
