// Where a path a spec names may lead on this host. carehost runs as root: a posix repository's
// directory is created and handed to the postgres account, and a CA file is read, so a spec that
// could name /etc, or carehost's own database, would reach what no organization should. A path is
// accepted inside the data dir, but not in one of carehost's own entries there (data-dir.ts), and
// under the roots the host's operator allows (CAREHOST_ALLOWED_PATHS), never in the spec itself;
// symbolic links are resolved first, so a link planted in an allowed directory does not lead out.
import { realpath } from "node:fs/promises";
import { basename, dirname, join, relative, resolve, sep } from "node:path";
import { DATA_DIR_ENTRIES } from "../../lib/data-dir.js";
import { ValidationError } from "../../lib/errors.js";
import type { TErrorDetail } from "../../lib/errors.js";
import type { TBackupRepositorySpec } from "../../spec/spec-schema.js";

/** The data dir and the roots the host's operator allows beyond it (absolute paths). */
export type THostPaths = { readonly home: string; readonly allowedRoots: readonly string[] };

/** A posix repository's directory for one organization: the spec's path (relative to the data dir), then the organization. */
export const posixRepositoryPathOf = (home: string, path: string, organization: string): string =>
  resolve(home, path, organization);

/** A CA file of the spec, relative to the data dir. */
export const caFilePathOf = (home: string, caFile: string): string => resolve(home, caFile);

const isWithin = (path: string, root: string): boolean => {
  const rest = relative(root, path);
  return rest === "" || (rest !== ".." && !rest.startsWith(`..${sep}`) && !rest.startsWith(sep));
};

/** The path with every symbolic link of its existing part resolved: what opening or creating it would reach. */
async function realPathOf(path: string): Promise<string> {
  const missing: string[] = [];
  for (let current = path; ; current = dirname(current)) {
    try {
      return join(await realpath(current), ...missing.reverse());
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== "ENOENT" && code !== "ENOTDIR") throw error;
      if (dirname(current) === current) return path;
      missing.push(basename(current));
    }
  }
}

/** Why carehost may not use this path (undefined: it may), and the path it really leads to. */
export async function confinementOf(
  path: string,
  paths: THostPaths,
): Promise<{ readonly real: string; readonly problem: string | undefined }> {
  const [real, home] = await Promise.all([realPathOf(path), realPathOf(paths.home)]);
  const roots = await Promise.all(paths.allowedRoots.map(realPathOf));
  const problem = (): string | undefined => {
    if (isWithin(home, real)) return `would hold carehost's data dir (${home})`;
    if (isWithin(real, home)) {
      const entry = relative(home, real).split(sep)[0] ?? "";
      const holds = DATA_DIR_ENTRIES[entry];
      return holds === undefined ? undefined : `lies in ${join(home, entry)}, where carehost keeps ${holds}`;
    }
    if (roots.some((root) => isWithin(real, root))) return undefined;
    const allowed = [`${home} (the data dir)`, ...roots].join(", ");
    return `is outside the allowed roots (${allowed}); set CAREHOST_ALLOWED_PATHS on the host to allow it`;
  };
  return { real, problem: problem() };
}

/** Every host path the organization's repositories name, with its field in the spec, resolved as the runtime uses it. */
function repositoryPaths(
  organization: string,
  repositories: readonly TBackupRepositorySpec[],
  home: string,
): { field: string; value: string; path: string }[] {
  return repositories.flatMap((repository, index) => {
    const field = `backupRepositories[${index}]`;
    if (repository.type === "posix")
      return [
        {
          field: `${field}.path`,
          value: repository.path,
          path: posixRepositoryPathOf(home, repository.path, organization),
        },
      ];
    return repository.caFile === undefined
      ? []
      : [{ field: `${field}.caFile`, value: repository.caFile, path: caFilePathOf(home, repository.caFile) }];
  });
}

/**
 * Refuses the organization's repositories when one names a path carehost may not use, with the
 * field, the value and where it leads: checked before a spec is recorded, and again before its
 * directories are made, for a spec recorded by an earlier carehost or under another setting.
 */
export async function assertRepositoriesConfined(
  organization: string,
  repositories: readonly TBackupRepositorySpec[],
  paths: THostPaths,
): Promise<void> {
  const problems: TErrorDetail[] = [];
  for (const item of repositoryPaths(organization, repositories, paths.home)) {
    const { real, problem } = await confinementOf(item.path, paths);
    if (problem === undefined) continue;
    const leads = real === item.path ? item.path : `${item.path}, through a symbolic link ${real}`;
    problems.push({
      path: item.field,
      message: `${item.field}: ${JSON.stringify(item.value)} (${leads}) ${problem}`,
    });
  }
  if (problems.length === 0) return;
  throw new ValidationError(
    problems.length === 1
      ? problems[0]!.message
      : `${problems.length} paths of the spec lead outside carehost's directories: ${problems.map((item) => item.message).join("; ")}`,
    problems,
  );
}
