// Azurite (Microsoft's Azure Storage emulator, from npm) over HTTPS with a certificate made for
// the test, so pgBackRest's azure repository type and rclone talk to a real Blob endpoint.
import { spawn } from "node:child_process";
import { chmod, mkdir } from "node:fs/promises";
import { connect } from "node:net";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { runCommand } from "../src/lib/runtime-command.js";
import { freeLoopbackPort } from "../src/runtime/local/runtime-instance.js";

/** Azurite's documented development account and key (public, the same in every installation). */
export const AZURITE_ACCOUNT = "devstoreaccount1";
export const AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

export type TAzurite = { readonly endpoint: string; readonly caFile: string; stop(): Promise<void> };

export async function startAzurite(directory: string): Promise<TAzurite> {
  await mkdir(directory, { recursive: true, mode: 0o711 });
  const caFile = join(directory, "azurite.crt");
  const keyFile = join(directory, "azurite.key");
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
    `subjectAltName=DNS:localhost,DNS:${AZURITE_ACCOUNT}.localhost,IP:127.0.0.1`,
    "-keyout",
    keyFile,
    "-out",
    caFile,
  ]);
  // <account>.localhost: Azurite also answers Azure's own form, https://<account>.<suffix> (test/connect-proxy.ts).
  // pgBackRest runs as the postgres account and reads the certificate as its CA.
  await chmod(caFile, 0o644);
  const port = await freeLoopbackPort();
  const child = spawn(
    process.execPath,
    [
      join(process.cwd(), "node_modules", "azurite", "dist", "src", "blob", "main.js"),
      "--blobHost",
      "127.0.0.1",
      "--blobPort",
      String(port),
      "--cert",
      caFile,
      "--key",
      keyFile,
      "--location",
      join(directory, "data"),
      "--disableTelemetry",
      "--silent",
      "--skipApiVersionCheck",
      "--loose",
    ],
    { stdio: "ignore" },
  );
  for (let attempt = 0; ; attempt += 1) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = connect(port, "127.0.0.1", () => resolve(socket.end() !== undefined)).on("error", () =>
        resolve(false),
      );
    });
    if (open) break;
    if (attempt > 100 || child.exitCode !== null) throw new Error(`Azurite did not start on port ${port}`);
    await sleep(100);
  }
  return {
    endpoint: `https://localhost:${port}/${AZURITE_ACCOUNT}`,
    caFile,
    stop: async () => {
      child.kill("SIGTERM");
      await new Promise((resolve) => (child.exitCode === null ? child.once("exit", resolve) : resolve(undefined)));
    },
  };
}
