// What every renderer produces: files for one environment, keyed by a relative path. Renderers are
// pure and deterministic (STYLE.md item 6): the same spec gives the same bytes, so a GitOps commit
// of an unchanged spec is empty and a diff shows only what changed.
import type { TOrganizationSpec } from "../spec/spec-schema.js";

export type TRenderedFile = {
  /** Path relative to the environment's directory, "/"-separated, e.g. "odoo/deployment-web.yaml". */
  readonly path: string;
  readonly content: string;
};

export const RENDER_TARGETS = ["kubernetes", "compose"] as const;
export type TRenderTarget = (typeof RENDER_TARGETS)[number];

/** Renders one environment of an organization; throws TypeError naming the offending value on bad input. */
export type TEnvironmentRenderer = (
  organization: TOrganizationSpec,
  environmentName: string,
) => readonly TRenderedFile[];
