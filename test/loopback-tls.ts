// What a test's object-store emulator needs to serve HTTPS on loopback: a self-signed certificate
// for `localhost` (pgBackRest 2.45 matches DNS names only, so clients connect to localhost, not
// 127.0.0.1), readable by the postgres account that runs pgBackRest, and a wait for the port.
import { chmod, mkdir } from "node:fs/promises";
import { connect } from "node:net";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { runCommand } from "../src/runtime/local/runtime-command.js";

export async function localhostCertificate(
  directory: string,
  name: string,
): Promise<{ certFile: string; keyFile: string }> {
  await mkdir(directory, { recursive: true, mode: 0o711 });
  const certFile = join(directory, `${name}.crt`);
  const keyFile = join(directory, `${name}.key`);
  await runCommand("openssl", [
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
    "-days",
    "1",
    "-subj",
    "/CN=localhost",
    "-addext",
    "subjectAltName=DNS:localhost,IP:127.0.0.1",
    "-keyout",
    keyFile,
    "-out",
    certFile,
  ]);
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
