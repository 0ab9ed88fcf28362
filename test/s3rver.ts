// s3rver (npm), an S3-compatible server written for tests, over HTTPS on loopback with a
// certificate made for the test, so pgBackRest's s3 repository type and restic's s3 backend write
// to a real S3 endpoint. What it covers and what it does not (checked with pgBackRest 2.45 and
// restic 0.14): path-style buckets, ListObjectsV2, multipart upload, multi-object delete; it checks
// that the access key ID is known but does NOT verify Signature Version 4 signatures, so a wrong
// secret access key goes unnoticed here (carehost's own signing is tested against AWS's examples).
// And a delimited listing omits a common prefix whose keys all lie deeper than one level (it does
// not walk below a would-be prefix), so pgBackRest's expire leaves an expired set's data files
// behind as orphans on s3rver; its backup.info and the set's manifest are removed as on S3.
import { spawn } from "node:child_process";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { freeLoopbackPort } from "../src/runtime/local/runtime-instance.js";
import { localhostCertificate, waitForPort } from "./loopback-tls.js";

const OBJECT_SUFFIX = "._S3rver_object";

/** The one access key ID s3rver knows; its secret is not checked, so tests use their own. */
export const S3RVER_ACCESS_KEY_ID = "S3RVER";

export type TS3rver = {
  readonly endpoint: string;
  readonly caFile: string;
  /** Keys of the objects below a prefix of a bucket, read from s3rver's own directory (one `<key>._S3rver_object` file per object). */
  objectKeys(bucket: string, prefix: string): Promise<string[]>;
  stop(): Promise<void>;
};

export async function startS3rver(directory: string): Promise<TS3rver> {
  const { certFile, keyFile } = await localhostCertificate(directory, "s3rver");
  const port = await freeLoopbackPort();
  const dataDirectory = join(directory, "data");
  const child = spawn(
    process.execPath,
    [
      join(process.cwd(), "node_modules", "s3rver", "bin", "s3rver.js"),
      "--directory",
      dataDirectory,
      "--address",
      "127.0.0.1",
      "--port",
      String(port),
      "--key",
      keyFile,
      "--cert",
      certFile,
      "--no-vhost-buckets",
      "--silent",
    ],
    { stdio: "ignore" },
  );
  await waitForPort(port, "s3rver", () => child.exitCode !== null);
  return {
    endpoint: `https://localhost:${port}`,
    caFile: certFile,
    objectKeys: async (bucket, prefix) => {
      const files = await readdir(join(dataDirectory, bucket, prefix), { recursive: true }).catch(() => []);
      return files
        .filter((file) => file.endsWith(OBJECT_SUFFIX))
        .map((file) => `${prefix}/${file.slice(0, -OBJECT_SUFFIX.length)}`)
        .sort();
    },
    stop: async () => {
      child.kill("SIGTERM");
      await new Promise((resolve) => (child.exitCode === null ? child.once("exit", resolve) : resolve(undefined)));
    },
  };
}
