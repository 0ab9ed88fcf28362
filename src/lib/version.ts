import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository root: the nearest directory above this module holding carehost's package.json (works from src/ and dist/). */
export const packageRoot: string = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (
    !existsSync(join(dir, "package.json")) ||
    !readFileSync(join(dir, "package.json"), "utf8").includes('"name": "carehost"')
  ) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error("carehost's package.json not found above " + fileURLToPath(import.meta.url));
    dir = parent;
  }
  return dir;
})();

// Read once so the CLI, the API and the OpenAPI document agree.
export const carehostVersion: string = (
  JSON.parse(readFileSync(join(packageRoot, "package.json"), "utf8")) as { version: string }
).version;
