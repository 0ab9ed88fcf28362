// The one way the local runtime writes a file it renders (configuration, ACLs, odoo.conf): only
// when the content differs, so an unchanged reconcile writes nothing and reports nothing, with the
// mode set even on an existing file, and owned by the service account that reads it.
import { chmod, chown, readFile, writeFile } from "node:fs/promises";
import type { TOsUser } from "./runtime-command.js";

/** Returns whether the file changed. */
export async function writeFileIfChanged(
  path: string,
  content: string,
  options: { readonly mode: number; readonly owner?: TOsUser | undefined },
): Promise<boolean> {
  if ((await readFile(path, "utf8").catch(() => undefined)) === content) return false;
  await writeFile(path, content, { mode: options.mode });
  await chmod(path, options.mode);
  if (options.owner !== undefined) await chown(path, options.owner.uid, options.owner.gid);
  return true;
}
