// The one way the local runtime writes a file it renders (configuration, ACLs, odoo.conf): only
// when the content differs, so an unchanged reconcile writes nothing and reports nothing, with the
// mode set even on an existing file, and owned by the service account that reads it. The file is
// opened with O_NOFOLLOW: its directory belongs to that account, which could put a symbolic link
// where the file goes, and carehost (root) would then write and hand over whatever it points to.
import { constants } from "node:fs";
import { open, readFile } from "node:fs/promises";
import { DomainError } from "../../lib/errors.js";
import type { TOsUser } from "../../lib/runtime-command.js";

const NO_FOLLOW = constants.O_NOFOLLOW;

/** Returns whether the file changed. */
export async function writeFileIfChanged(
  path: string,
  content: string,
  options: { readonly mode: number; readonly owner?: TOsUser | undefined },
): Promise<boolean> {
  if (
    (await readFile(path, { encoding: "utf8", flag: constants.O_RDONLY | NO_FOLLOW }).catch(() => undefined)) ===
    content
  )
    return false;
  const file = await open(
    path,
    constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | NO_FOLLOW,
    options.mode,
  ).catch((error: NodeJS.ErrnoException) => {
    throw error.code === "ELOOP"
      ? new DomainError(
          `${path} is a symbolic link; carehost does not write through one: remove it, and the next apply writes the file`,
        )
      : error;
  });
  try {
    await file.writeFile(content);
    await file.chmod(options.mode);
    if (options.owner !== undefined) await file.chown(options.owner.uid, options.owner.gid);
  } finally {
    await file.close();
  }
  return true;
}
