// Where the CLI finds the server and its credentials, in order:
//   url:   --url, CAREHOST_URL, the `carehost login` file, the running server's record in the
//          data dir, http://127.0.0.1:8080
//   token: CAREHOST_TOKEN, the `carehost login` file, the local CLI token `carehost up` wrote
//          (mode 0600) into the data dir on first start.
// The data dir is CAREHOST_HOME, else ./.carehost when it exists, else the one the last local
// `carehost up` recorded in the user's config dir, so `carehost status` works from any directory.
// Files are read only when their mode keeps other users out, as ssh does with private keys.
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { chmod, mkdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { CliError } from "./cli-errors.js";

export const defaultServerUrl = "http://127.0.0.1:8080";

const configDir = (): string => join(process.env.XDG_CONFIG_HOME ?? join(homedir(), ".config"), "carehost");
export const serverRecordPath = (home: string): string => join(home, "server.json");
export const localCliTokenPath = (home: string): string => join(home, "cli-token");
export const loginCredentialsPath = (): string => join(configDir(), "credentials.json");
/** Written by `carehost up`: where the local server's data dir is. */
export const localServerPointerPath = (): string => join(configDir(), "local-server.json");

const dataHome = async (): Promise<string> => {
  if (process.env.CAREHOST_HOME !== undefined) return resolve(process.env.CAREHOST_HOME);
  const here = resolve(".carehost");
  if (existsSync(here)) return here;
  try {
    return (JSON.parse(await readFile(localServerPointerPath(), "utf8")) as { home?: string }).home ?? here;
  } catch {
    return here;
  }
};

type TLoginCredentials = { url: string; token: string; username: string };

const readPrivateFile = async (path: string): Promise<string | undefined> => {
  try {
    const info = await stat(path);
    if ((info.mode & 0o077) !== 0)
      throw new CliError(
        `${path} is readable by other users (mode ${(info.mode & 0o777).toString(8)}); run chmod 600 ${path}`,
      );
    return await readFile(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
};

const readLogin = async (): Promise<TLoginCredentials | undefined> => {
  const text = await readPrivateFile(loginCredentialsPath());
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text) as TLoginCredentials;
  } catch {
    throw new CliError(`${loginCredentialsPath()} is not valid JSON; run carehost login again`);
  }
};

const readServerUrl = async (home: string): Promise<string | undefined> => {
  try {
    return (JSON.parse(await readFile(serverRecordPath(home), "utf8")) as { url?: string }).url;
  } catch {
    return undefined;
  }
};

export const resolveServer = async (
  urlOption: string | undefined,
): Promise<{ url: string; token: string | undefined; reloadToken?: () => Promise<string | undefined> }> => {
  const login = await readLogin();
  const home = await dataHome();
  const url = (
    urlOption ??
    process.env.CAREHOST_URL ??
    login?.url ??
    (await readServerUrl(home)) ??
    defaultServerUrl
  ).replace(/\/+$/, "");
  const explicit = process.env.CAREHOST_TOKEN ?? login?.token;
  if (explicit !== undefined) return { url, token: explicit };
  // The server renews the local CLI token before it expires (identity renewLocalCliToken) and rewrites
  // the file: a command that read the old one just before is refused once, and reads the file again.
  const readLocalToken = async () => (await readPrivateFile(localCliTokenPath(home)))?.trim();
  return { url, token: await readLocalToken(), reloadToken: readLocalToken };
};

/**
 * Written whole or not at all (a temporary file renamed over it): a reader never sees half a token.
 * The temporary name is random, so two writers of one path (the server renewing its token while
 * another start writes it, two `carehost login`s) never write into or rename each other's file.
 */
export const writePrivateFile = async (path: string, content: string): Promise<void> => {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const written = `${path}.${randomBytes(8).toString("hex")}.tmp`;
  try {
    await writeFile(written, content, { mode: 0o600, flag: "wx" });
    await chmod(written, 0o600);
    await rename(written, path);
  } catch (error) {
    // Best effort: what the caller needs is the error that stopped the write, not one from tidying up.
    await rm(written, { force: true }).catch(() => undefined);
    throw error;
  }
};

export const saveLogin = (credentials: TLoginCredentials): Promise<void> =>
  writePrivateFile(loginCredentialsPath(), `${JSON.stringify(credentials, null, 2)}\n`);
