// A PHI-safe copy of production, made in place on a scratch copy that nobody uses yet: sample the
// source, neutralize and de-identify the copy in one transaction (all or nothing; the pseudonym key
// dies with it), prune the copy's filestore, then verify. Restore wires this between "restored
// into a scratch database" and "swapped in"; a copy whose verification fails must not be swapped in.
import { pruneFilestore, replaceAttachments } from "./copies-attachments.js";
import type { TDeidentifyTableResult, TExtraTable } from "./copies-deidentify.js";
import { copyRules, deidentifyTables } from "./copies-deidentify.js";
import type { TNeutralizeResult, TOdooVersion } from "./copies-neutralize.js";
import { neutralizeCopy } from "./copies-neutralize.js";
import type { TCopyConnection } from "./copies-sql.js";
import type { TVerification } from "./copies-verify.js";
import { countRows, sampleIdentifyingValues, verifyCopy } from "./copies-verify.js";

export type TTransformInput = {
  /** The source (production, or the restored copy before it is touched): read only, for the sample and row counts. */
  readonly source: TCopyConnection;
  /** The scratch copy, on a dedicated connection: transformed in place. */
  readonly copy: TCopyConnection;
  readonly odooVersion: TOdooVersion;
  /** The copy's filestore (<data_dir>/filestore/<db>); required when attachments live there. */
  readonly filestoreDir?: string;
  /** The source environment's custom tables holding PHI (spec environments[].deidentify.tables). */
  readonly extraTables?: readonly TExtraTable[];
  /** Sampled values per identifying column for the scan. Default 25. */
  readonly samplePerColumn?: number;
};

export type TTransformResult = {
  readonly neutralization: TNeutralizeResult;
  readonly tables: readonly TDeidentifyTableResult[];
  readonly attachmentsReplaced: number;
  readonly filesRemoved: number;
  readonly verification: TVerification;
};

/** Neutralizes and de-identifies the copy (one transaction), without verifying it. */
export const transformCopy = async (
  copy: TCopyConnection,
  { odooVersion, filestoreDir, extraTables = [] }: Omit<TTransformInput, "source" | "copy">,
) => {
  const rules = await copyRules(copy, extraTables);
  await copy.query("BEGIN");
  try {
    const neutralization = await neutralizeCopy(copy, { odooVersion });
    const tables = await deidentifyTables(copy, rules);
    const attachments = await replaceAttachments(copy, rules, filestoreDir);
    await copy.query("COMMIT");
    const pruned = filestoreDir === undefined ? { removed: 0 } : await pruneFilestore(copy, filestoreDir);
    return { rules, neutralization, tables, attachmentsReplaced: attachments.replaced, filesRemoved: pruned.removed };
  } catch (error) {
    await copy.query("ROLLBACK").catch(() => undefined);
    throw error;
  }
};

/** Samples the source, transforms the copy, verifies it; the caller swaps it in only when verification.ok. */
export const makePhiSafeCopy = async (input: TTransformInput): Promise<TTransformResult> => {
  const rules = await copyRules(input.source, input.extraTables ?? []);
  const sample = await sampleIdentifyingValues(input.source, {
    rules,
    ...(input.samplePerColumn === undefined ? {} : { perColumn: input.samplePerColumn }),
  });
  const sourceCounts = await countRows(input.source);
  const transformed = await transformCopy(input.copy, input);
  const verification = await verifyCopy(input.copy, {
    sample,
    sourceCounts,
    rules: transformed.rules,
    ...(input.filestoreDir === undefined ? {} : { filestoreDir: input.filestoreDir }),
  });
  return {
    neutralization: transformed.neutralization,
    tables: transformed.tables,
    attachmentsReplaced: transformed.attachmentsReplaced,
    filesRemoved: transformed.filesRemoved,
    verification,
  };
};
