// Creates an S3 bucket before pgBackRest's stanza-create: pgBackRest 2.45 writes into a bucket but
// creates one only through `repo-create`, which it marks "for internal use only". This is the one
// call carehost makes to S3 itself (a HEAD, then a PUT when the bucket is missing), signed with AWS
// Signature Version 4 as AWS documents it ("Authenticating Requests: Using the Authorization
// Header"); everything in the bucket is pgBackRest's and restic's.
//
// The access key is one secret of carehost's store (the spec's keySecretRef) holding the access key
// ID on its first line and the secret access key on its second, as the Compose bundle reads it.
import { createHash, createHmac } from "node:crypto";
import { DomainError, ValidationError } from "../lib/errors.js";
import { errorCodeOf, objectStoreRequest } from "./object-store-request.js";
import type { TS3Repository } from "./pgbackrest-config.js";

export type TS3Credentials = { readonly accessKeyId: string; readonly secretAccessKey: string };

/**
 * Reads the two lines of an S3 key secret. A value of any other shape is refused with the secret's
 * name and what it should hold; the value itself is never part of the message.
 */
export function s3CredentialsFrom(value: string, secretName: string): TS3Credentials {
  const lines = value
    .trim()
    .split(/\r?\n/)
    .map((line) => line.trim());
  const [accessKeyId, secretAccessKey] = lines;
  if (
    lines.length !== 2 ||
    accessKeyId === undefined ||
    secretAccessKey === undefined ||
    /\s/.test(accessKeyId) ||
    /\s/.test(secretAccessKey) ||
    accessKeyId === "" ||
    secretAccessKey === ""
  ) {
    throw new ValidationError(
      `secret ${JSON.stringify(secretName)} must hold the access key ID on its first line and the secret access key on its second ` +
        `(it has ${lines.length} line${lines.length === 1 ? "" : "s"}); store it with: printf '%s\\n%s\\n' "$ACCESS_KEY_ID" "$SECRET_ACCESS_KEY" | carehost secrets set ${secretName}`,
    );
  }
  return { accessKeyId, secretAccessKey };
}

const sha256Hex = (data: string) => createHash("sha256").update(data, "utf8").digest("hex");
const hmac = (key: Buffer | string, data: string) => createHmac("sha256", key).update(data, "utf8").digest();
/** RFC 3986 encoding (what SigV4 canonicalizes with): encodeURIComponent leaves !'()* alone. */
const uriEncode = (value: string) =>
  encodeURIComponent(value).replace(
    /[!'()*]/g,
    (character) => `%${character.charCodeAt(0).toString(16).toUpperCase()}`,
  );

export type TSignedRequestInput = {
  readonly method: string;
  /** Host header as sent: host, or host:port for a port other than 443. */
  readonly host: string;
  /** The path, not encoded yet (each segment is encoded here, slashes kept). */
  readonly path: string;
  readonly query?: Readonly<Record<string, string>>;
  /** Headers to sign besides host, x-amz-date and x-amz-content-sha256. */
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: string;
  readonly region: string;
  readonly credentials: TS3Credentials;
  readonly date: Date;
};

/**
 * Signs an S3 request with AWS Signature Version 4 (Authorization header, signed payload). Returns
 * the encoded path and query to send and every header to send with them. Pure.
 */
export function signS3Request(input: TSignedRequestInput): { pathAndQuery: string; headers: Record<string, string> } {
  const amzDate = input.date
    .toISOString()
    .replace(/[-:]/g, "")
    .replace(/\.\d{3}/, "");
  const day = amzDate.slice(0, 8);
  const payloadHash = sha256Hex(input.body ?? "");
  const headers: Record<string, string> = {
    ...input.headers,
    host: input.host,
    "x-amz-content-sha256": payloadHash,
    "x-amz-date": amzDate,
  };
  const canonicalHeaders = Object.entries(headers)
    .map(([name, value]) => [name.toLowerCase(), value.trim().replace(/\s+/g, " ")] as const)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const signedHeaders = canonicalHeaders.map(([name]) => name).join(";");
  const canonicalPath = input.path.split("/").map(uriEncode).join("/");
  const canonicalQuery = Object.entries(input.query ?? {})
    .map(([name, value]) => `${uriEncode(name)}=${uriEncode(value)}`)
    .sort()
    .join("&");
  const canonicalRequest = [
    input.method,
    canonicalPath,
    canonicalQuery,
    ...canonicalHeaders.map(([name, value]) => `${name}:${value}`),
    "",
    signedHeaders,
    payloadHash,
  ].join("\n");
  const scope = `${day}/${input.region}/s3/aws4_request`;
  const stringToSign = ["AWS4-HMAC-SHA256", amzDate, scope, sha256Hex(canonicalRequest)].join("\n");
  const signingKey = hmac(
    hmac(hmac(hmac(`AWS4${input.credentials.secretAccessKey}`, day), input.region), "s3"),
    "aws4_request",
  );
  const signature = createHmac("sha256", signingKey).update(stringToSign, "utf8").digest("hex");
  headers.Authorization = `AWS4-HMAC-SHA256 Credential=${input.credentials.accessKeyId}/${scope},SignedHeaders=${signedHeaders},Signature=${signature}`;
  return { pathAndQuery: canonicalQuery === "" ? canonicalPath : `${canonicalPath}?${canonicalQuery}`, headers };
}

/** Host and path of the bucket: bucket.<host> with virtual-host URIs (AWS), <host>/<bucket> with path-style ones. */
const bucketAddress = (repository: TS3Repository) => {
  const { host, port, pathStyle } = repository.endpoint;
  const hostname = pathStyle ? host : `${repository.bucket}.${host}`;
  return { host: port === 443 ? hostname : `${hostname}:${port}`, path: pathStyle ? `/${repository.bucket}` : "/" };
};

/**
 * Creates the bucket unless it exists. Returns whether it created it. A bucket that exists but
 * answers 403 (another account's, or a key without access) is an error naming bucket and endpoint.
 */
export async function ensureS3Bucket(
  repository: TS3Repository,
  credentials: TS3Credentials,
  now = new Date(),
): Promise<boolean> {
  const address = bucketAddress(repository);
  const where = `S3 bucket ${repository.bucket} at https://${address.host} (repository ${repository.name})`;
  const send = async (method: string, body?: string) => {
    const signed = signS3Request({
      method,
      host: address.host,
      path: address.path,
      region: repository.region,
      credentials,
      date: now,
      ...(body === undefined ? {} : { body }),
    });
    return objectStoreRequest(new URL(`https://${address.host}${signed.pathAndQuery}`), {
      method,
      headers: { ...signed.headers, "Content-Length": String(Buffer.byteLength(body ?? "")) },
      ...(body === undefined ? {} : { body }),
      ...(repository.caFile === undefined ? {} : { caFile: repository.caFile }),
    }).catch((error: unknown) => {
      throw new DomainError(`could not reach ${where}: ${error instanceof Error ? error.message : String(error)}`);
    });
  };
  const head = await send("HEAD");
  if (head.status === 200) return false;
  if (head.status !== 404)
    throw new DomainError(
      `${where} answered HTTP ${head.status}${head.status === 403 ? " (access denied: check the access key and its permissions)" : ""}`,
    );
  // Outside us-east-1, S3 wants the region named in the request body.
  const body =
    repository.region === "us-east-1"
      ? undefined
      : `<CreateBucketConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><LocationConstraint>${repository.region}</LocationConstraint></CreateBucketConfiguration>`;
  const created = await send("PUT", body);
  if (created.status === 200) return true;
  const code = errorCodeOf(created);
  if (code === "BucketAlreadyOwnedByYou") return false;
  throw new DomainError(
    `creating ${where} failed: ${code}${code === "BucketAlreadyExists" ? " (the name is taken by another account)" : ""}`,
  );
}
