// The dotted paths a schema's objects define (odoo, odoo.workers, backup.schedule.full…), read from
// the zod schema itself so that a list of fields in the spec (changeManagement.standardChanges) is
// checked against what an environment can actually say. Arrays are leaves: a plan compares them whole.
import type { z } from "zod";

type TDef = {
  type: string;
  shape?: Record<string, z.ZodType>;
  innerType?: z.ZodType;
  in?: z.ZodType;
  options?: readonly z.ZodType[];
};

const WRAPPERS = new Set(["optional", "default", "prefault", "nullable", "nonoptional", "readonly", "catch"]);

const collect = (schema: z.ZodType, prefix: string, paths: Set<string>): void => {
  const def = (schema as unknown as { _zod: { def: TDef } })._zod.def;
  if (def.type === "object" && def.shape !== undefined) {
    for (const [key, member] of Object.entries(def.shape)) {
      const path = prefix === "" ? key : `${prefix}.${key}`;
      paths.add(path);
      collect(member, path, paths);
    }
  } else if (WRAPPERS.has(def.type) && def.innerType !== undefined) collect(def.innerType, prefix, paths);
  else if (def.type === "pipe" && def.in !== undefined) collect(def.in, prefix, paths);
  else if (def.type === "union") for (const option of def.options ?? []) collect(option, prefix, paths);
};

export const fieldPathsOf = (schema: z.ZodType): ReadonlySet<string> => {
  const paths = new Set<string>();
  collect(schema, "", paths);
  return paths;
};
