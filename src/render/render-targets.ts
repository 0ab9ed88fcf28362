// The renderer of each target, picked once from this record (STYLE.md item 4): callers never
// branch on the target themselves.
import { renderComposeEnvironment } from "./compose/compose-render.js";
import { renderKubernetesEnvironment } from "./kubernetes/kubernetes-render.js";
import { RENDER_TARGETS } from "./render-types.js";
import type { TEnvironmentRenderer, TRenderTarget } from "./render-types.js";

export const RENDERERS: Readonly<Record<TRenderTarget, TEnvironmentRenderer>> = {
  kubernetes: renderKubernetesEnvironment,
  compose: renderComposeEnvironment,
};

export const isRenderTarget = (value: string): value is TRenderTarget =>
  (RENDER_TARGETS as readonly string[]).includes(value);
