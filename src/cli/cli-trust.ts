// Which certificates the CLI trusts: Node's bundled public roots, and with CAREHOST_CA_FILE the CA
// that issued carehost's own certificate (a private CA, as a hospital's usually is). The CA reaches
// fetch through an undici dispatcher; NODE_EXTRA_CA_CERTS, if set, stays trusted too. The CLI calls
// the undici package's fetch, never the global one: Node's fetch is its own bundled copy of undici,
// whose version follows Node's, and it does not promise to accept a dispatcher from another copy.
// When a certificate is refused, the advice says what to change for the reason it was refused.
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { rootCertificates } from "node:tls";
import { Agent, fetch } from "undici";
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
 * The fetch the CLI sends every request with: it trusts CAREHOST_CA_FILE as well as the usual roots
 * when that is set. Built once per process: one connection pool for every request of a command.
 */
export const trustedFetch = (env: NodeJS.ProcessEnv = process.env): typeof fetch => {
  const configured = env[CA_FILE_VARIABLE];
  if (configured === undefined || configured === "") return fetch;
  const extra = env.NODE_EXTRA_CA_CERTS;
  const ca = [
    ...rootCertificates,
    ...(extra === undefined || extra === "" ? [] : [readCaFile("NODE_EXTRA_CA_CERTS", extra)]),
    readCaFile(CA_FILE_VARIABLE, resolve(configured)),
  ];
  const dispatcher = new Agent({ connect: { ca } });
  return (input, init) => fetch(input, { ...init, dispatcher });
};

/** OpenSSL's codes for a chain that ends at an issuer the client does not trust: the one case a CA file cures. */
const UNTRUSTED_ISSUER = new Set([
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
]);

/** What Node's TLS attaches to a refused connection: checkServerIdentity adds the host asked for and the peer's certificate. */
export type TTlsFailure = {
  readonly code?: string;
  readonly host?: string;
  readonly cert?: { readonly subjectaltname?: string };
};

/**
 * What to do about a certificate the CLI refused to talk to `url` with, or undefined when the
 * failure was not about the certificate (the caller then asks whether the server runs).
 */
export const certificateAdvice = (failure: TTlsFailure, url: string): string | undefined => {
  const code = failure.code ?? "";
  if (UNTRUSTED_ISSUER.has(code))
    return `the server's certificate is not trusted: set ${CA_FILE_VARIABLE} to the PEM file of the CA that issued it`;
  if (code === "ERR_TLS_CERT_ALTNAME_INVALID") {
    const host = failure.host ?? new URL(url).hostname;
    const names = failure.cert?.subjectaltname;
    return `the server's certificate is not issued for ${host}${names === undefined || names === "" ? "" : ` (it names ${names})`}: connect to a name the certificate carries (--url or CAREHOST_URL), or give the server a certificate for ${host}`;
  }
  if (code === "CERT_HAS_EXPIRED")
    return "the server's certificate has expired: the server needs a renewed certificate (its CAREHOST_TLS_CERT)";
  if (code === "CERT_NOT_YET_VALID")
    return "the server's certificate is not valid yet: check the clock of this machine and of the server";
  if (/CERT|SELF_SIGNED|UNABLE_TO_(GET|VERIFY)/.test(code)) return `the server's certificate was refused (${code})`;
  return undefined;
};
