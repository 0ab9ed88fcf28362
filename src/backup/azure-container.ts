// Creates an Azure Blob container before pgBackRest's stanza-create (pgBackRest writes into a
// container but never creates one). This is the single REST call carehost makes to Azure itself,
// signed with the storage account's shared key as the Blob service documents ("Authorize with
// Shared Key"); it goes through Node's https with the repository's CA file, which the SDK cannot
// take per call (object-store-request.ts). Everything else in the container is pgBackRest's.
import { createHmac } from "node:crypto";
import { DomainError } from "../lib/errors.js";
import { errorCodeOf, objectStoreRequest } from "./object-store-request.js";
import type { TAzureRepository } from "./pgbackrest-config.js";

const API_VERSION = "2021-08-06";

/** https://<account>.blob.core.windows.net/<container>, or the path-style endpoint of the spec. */
const containerUrl = (repository: TAzureRepository): URL => {
  const endpoint = repository.endpoint;
  if (endpoint === undefined)
    return new URL(`https://${repository.account}.blob.core.windows.net/${repository.container}`);
  const base = `https://${endpoint.host}:${endpoint.port}`;
  return new URL(
    endpoint.pathStyle ? `${base}/${repository.account}/${repository.container}` : `${base}/${repository.container}`,
  );
};

/** The Shared Key signature of a Create Container request (no body, no extra headers). */
export function sharedKeyAuthorization(account: string, path: string, key: string, date: string): string {
  const canonicalHeaders = `x-ms-date:${date}\nx-ms-version:${API_VERSION}\n`;
  // /<account><path as addressed>: with a path-style endpoint (Azurite) the account appears twice.
  const canonicalResource = `/${account}${path}\nrestype:container`;
  const stringToSign = ["PUT", "", "", "", "", "", "", "", "", "", "", "", canonicalHeaders + canonicalResource].join(
    "\n",
  );
  return `SharedKey ${account}:${createHmac("sha256", Buffer.from(key, "base64")).update(stringToSign, "utf8").digest("base64")}`;
}

/** Creates the container; an existing one (409 ContainerAlreadyExists) is fine. */
export async function ensureAzureContainer(repository: TAzureRepository, key: string): Promise<void> {
  const url = containerUrl(repository);
  url.searchParams.set("restype", "container");
  const date = new Date().toUTCString();
  const response = await objectStoreRequest(url, {
    method: "PUT",
    headers: {
      "x-ms-date": date,
      "x-ms-version": API_VERSION,
      "Content-Length": "0",
      Authorization: sharedKeyAuthorization(repository.account, url.pathname, key, date),
    },
    ...(repository.caFile === undefined ? {} : { caFile: repository.caFile }),
  }).catch((error: unknown) => {
    throw new DomainError(
      `could not reach Azure container ${repository.container} at ${url.origin}: ${error instanceof Error ? error.message : String(error)}`,
    );
  });
  if (response.status === 201 || response.status === 409) return;
  throw new DomainError(
    `creating Azure container ${repository.container} at ${url.origin} failed: ${errorCodeOf(response)}`,
  );
}
