// What a test's object-store emulator needs to serve HTTPS on loopback: a self-signed certificate
// for `localhost` (pgBackRest 2.45 matches DNS names only, so clients connect to localhost, not
// 127.0.0.1), readable by the postgres account that runs pgBackRest, and a wait for the port.
import { chmod, mkdir, writeFile } from "node:fs/promises";
import { connect } from "node:net";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { runCommand } from "../src/lib/runtime-command.js";

export type TCertificateOptions = {
  /** The names the certificate is for; a test of a hostname mismatch gives one the client does not connect to. */
  readonly subjectAltName?: string;
  /** A certificate whose validity ended a year ago, to see how a client refuses it. */
  readonly expired?: boolean;
};

export async function localhostCertificate(
  directory: string,
  name: string,
  { subjectAltName = "DNS:localhost,IP:127.0.0.1", expired = false }: TCertificateOptions = {},
): Promise<{ certFile: string; keyFile: string }> {
  await mkdir(directory, { recursive: true, mode: 0o711 });
  const certFile = join(directory, `${name}.crt`);
  const keyFile = join(directory, `${name}.key`);
  const subject = ["-subj", "/CN=localhost", "-addext", `subjectAltName=${subjectAltName}`];
  const newKey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", keyFile];
  if (!expired) {
    await runCommand("openssl", ["req", "-x509", ...newKey, "-days", "1", ...subject, "-out", certFile]);
  } else {
    // OpenSSL 3.0's req and x509 refuse a non-positive -days; only `openssl ca` takes explicit dates,
    // and it wants a config, an index and a serial file of its own.
    const ca = join(directory, `${name}-ca`);
    await mkdir(ca, { recursive: true });
    await writeFile(join(ca, "index.txt"), "");
    await writeFile(join(ca, "serial"), "01\n");
    await writeFile(
      join(ca, "openssl.cnf"),
      [
        "[ca]",
        "default_ca = expired",
        "[expired]",
        `database = ${join(ca, "index.txt")}`,
        `new_certs_dir = ${ca}`,
        `serial = ${join(ca, "serial")}`,
        "default_md = sha256",
        "policy = any_name",
        "copy_extensions = copy",
        "[any_name]",
        "commonName = supplied",
        "",
      ].join("\n"),
    );
    const request = join(ca, "request.csr");
    await runCommand("openssl", ["req", "-new", ...newKey, ...subject, "-out", request]);
    const year = new Date().getUTCFullYear();
    await runCommand("openssl", [
      "ca",
      "-batch",
      "-selfsign",
      "-config",
      join(ca, "openssl.cnf"),
      "-keyfile",
      keyFile,
      "-startdate",
      `${year - 2}0101000000Z`,
      "-enddate",
      `${year - 1}0101000000Z`,
      "-in",
      request,
      "-out",
      certFile,
    ]);
  }
  await chmod(certFile, 0o644);
  return { certFile, keyFile };
}

/** Resolves once something accepts connections on 127.0.0.1:port; fails after 10 s or when `exited` says the server died. */
export async function waitForPort(port: number, what: string, exited: () => boolean): Promise<void> {
  for (let attempt = 0; ; attempt += 1) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = connect(port, "127.0.0.1", () => resolve(socket.end() !== undefined)).on("error", () =>
        resolve(false),
      );
    });
    if (open) return;
    if (attempt > 100 || exited()) throw new Error(`${what} did not start on port ${port}`);
    await sleep(100);
  }
}
