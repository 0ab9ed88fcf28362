// Which certificates the CLI trusts: Node's bundled public roots, and with CAREHOST_CA_FILE the CA
// that issued carehost's own certificate (a private CA, as a hospital's usually is). Node's fetch
// takes the CA through an undici dispatcher; NODE_EXTRA_CA_CERTS, if set, stays trusted too.
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { rootCertificates } from "node:tls";
import { Agent } from "undici";
import { CliError, exitCodes } from "./cli-errors.js";

export const CA_FILE_VARIABLE = "CAREHOST_CA_FILE";

const PEM_CERTIFICATE = "-----BEGIN CERTIFICATE-----";

/** The PEM text of the CA file, or a usage error naming the variable and the path (never its content). */
const readCaFile = (variable: string, path: string): string => {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    throw new CliError(
      `${variable}: cannot read ${path} (${(error as NodeJS.ErrnoException).code ?? "unreadable"})`,
      exitCodes.usage,
    );
  }
  if (!text.includes(PEM_CERTIFICATE))
    throw new CliError(`${variable}: ${path} holds no PEM certificate (${PEM_CERTIFICATE})`, exitCodes.usage);
  return text;
};

/**
 * The fetch options that make requests trust CAREHOST_CA_FILE as well as the usual roots, or none
 * when it is not set. Built once per process: one connection pool for every request of a command.
 */
export const trustOptions = (env: NodeJS.ProcessEnv = process.env): { dispatcher?: Agent } => {
  const configured = env[CA_FILE_VARIABLE];
  if (configured === undefined || configured === "") return {};
  const extra = env.NODE_EXTRA_CA_CERTS;
  const ca = [
    ...rootCertificates,
    ...(extra === undefined || extra === "" ? [] : [readCaFile("NODE_EXTRA_CA_CERTS", extra)]),
    readCaFile(CA_FILE_VARIABLE, resolve(configured)),
  ];
  return { dispatcher: new Agent({ connect: { ca } }) };
};
