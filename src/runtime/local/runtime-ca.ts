// A certificate authority per organization, so every PostgreSQL and Redis of the organization
// serves TLS that clients verify (db_sslmode = verify-full) without trusting a public CA. The CA's
// private key lives in carehost's encrypted secret store; openssl sees it only for the moment it
// signs, in a 0600 file inside a 0700 directory that is removed at once (openssl cannot read a key
// from a socket, which is what node's stdin pipes are).
import { generateKeyPairSync, X509Certificate, createPrivateKey } from "node:crypto";
import { chmod, chown, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runCommand } from "../../lib/runtime-command.js";
import type { TOsUser } from "../../lib/runtime-command.js";

/** The part of the secret store the runtime needs. */
export type TRuntimeSecrets = {
  ensure(name: string, generate: () => string): Promise<unknown>;
  current(name: string): Promise<string>;
};

export type TCertificateAuthority = { readonly certPath: string; readonly certPem: string; readonly keyPem: string };

const CA_DAYS = 3650;
// Browsers cap server certificates at 397 days; carehost renews well before that.
const SERVER_CERT_DAYS = 397;
const RENEW_BEFORE_MS = 30 * 24 * 3600 * 1000;

const newEcKey = (): string =>
  generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ type: "pkcs8", format: "pem" }).toString();

const readIfExists = async (path: string): Promise<string | undefined> => {
  try {
    return await readFile(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
};

const stillValid = (certificate: X509Certificate, now: Date) =>
  new Date(certificate.validFrom) <= now && new Date(certificate.validTo).getTime() - now.getTime() > RENEW_BEFORE_MS;

async function withPrivateKeyFile<T>(keyPem: string, use: (keyPath: string) => Promise<T>): Promise<T> {
  const directory = await mkdtemp(join(tmpdir(), "carehost-ca-"));
  try {
    const keyPath = join(directory, "ca.key");
    await writeFile(keyPath, keyPem, { mode: 0o600 });
    return await use(keyPath);
  } finally {
    await rm(directory, { recursive: true, force: true });
  }
}

export const caSecretName = (organization: string) => `runtime/${organization}/ca-key`;

/** Loads the organization's CA, creating it (or a new certificate for the same key when it nears expiry). */
export async function ensureCertificateAuthority(
  organization: string,
  directory: string,
  secrets: TRuntimeSecrets,
  now = new Date(),
): Promise<TCertificateAuthority> {
  await mkdir(directory, { recursive: true, mode: 0o755 });
  await secrets.ensure(caSecretName(organization), newEcKey);
  const keyPem = await secrets.current(caSecretName(organization));
  const certPath = join(directory, "ca.crt");
  const existing = await readIfExists(certPath);
  if (existing !== undefined) {
    const certificate = new X509Certificate(existing);
    if (certificate.checkPrivateKey(createPrivateKey(keyPem)) && stillValid(certificate, now))
      return { certPath, certPem: existing, keyPem };
  }
  await withPrivateKeyFile(keyPem, (keyPath) =>
    runCommand("openssl", [
      "req",
      "-x509",
      "-new",
      "-key",
      keyPath,
      "-sha256",
      "-days",
      String(CA_DAYS),
      "-subj",
      `/O=carehost/OU=${organization}/CN=carehost ${organization} CA`,
      "-addext",
      "basicConstraints=critical,CA:TRUE,pathlen:0",
      "-addext",
      "keyUsage=critical,keyCertSign,cRLSign",
      "-out",
      certPath,
    ]),
  );
  await chmod(certPath, 0o644);
  return { certPath, certPem: await readFile(certPath, "utf8"), keyPem };
}

export type TServerCertificate = { readonly certPath: string; readonly keyPath: string; readonly caPath: string };

/**
 * A server certificate for 127.0.0.1, ::1 and localhost in `directory`, owned by the service's OS
 * user (PostgreSQL refuses a key others can read). Reissued only when missing, not from the current
 * CA, or near expiry, so reconcile is a no-op otherwise.
 */
export async function ensureServerCertificate(
  ca: TCertificateAuthority,
  directory: string,
  commonName: string,
  owner: TOsUser | undefined,
  now = new Date(),
): Promise<{ certificate: TServerCertificate; issued: boolean }> {
  const certificate = {
    certPath: join(directory, "server.crt"),
    keyPath: join(directory, "server.key"),
    caPath: join(directory, "ca.crt"),
  };
  await mkdir(directory, { recursive: true, mode: 0o700 });
  const [certPem, keyPem, caPem] = await Promise.all([
    readIfExists(certificate.certPath),
    readIfExists(certificate.keyPath),
    readIfExists(certificate.caPath),
  ]);
  if (certPem !== undefined && keyPem !== undefined && caPem === ca.certPem) {
    const current = new X509Certificate(certPem);
    const caCertificate = new X509Certificate(ca.certPem);
    if (
      current.verify(caCertificate.publicKey) &&
      current.checkPrivateKey(createPrivateKey(keyPem)) &&
      stillValid(current, now)
    ) {
      return { certificate, issued: false };
    }
  }
  await writeFile(certificate.keyPath, newEcKey(), { mode: 0o600 });
  await withPrivateKeyFile(ca.keyPem, (caKeyPath) =>
    runCommand("openssl", [
      "req",
      "-x509",
      "-new",
      "-key",
      certificate.keyPath,
      "-CA",
      ca.certPath,
      "-CAkey",
      caKeyPath,
      "-sha256",
      "-days",
      String(SERVER_CERT_DAYS),
      "-subj",
      `/O=carehost/CN=${commonName}`,
      "-addext",
      "subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost",
      "-addext",
      "basicConstraints=critical,CA:FALSE",
      "-addext",
      "keyUsage=critical,digitalSignature,keyEncipherment",
      "-addext",
      "extendedKeyUsage=serverAuth",
      "-out",
      certificate.certPath,
    ]),
  );
  await writeFile(certificate.caPath, ca.certPem, { mode: 0o644 });
  await chmod(certificate.keyPath, 0o600);
  if (owner !== undefined) {
    await Promise.all(
      [directory, certificate.certPath, certificate.keyPath, certificate.caPath].map((path) =>
        chown(path, owner.uid, owner.gid),
      ),
    );
  }
  return { certificate, issued: true };
}
