// One HTTPS request to an object store (an Azure container, an S3 bucket), through Node's https
// with the repository's own CA file when it has one: the few calls carehost makes itself, before
// pgBackRest and restic take over. Signing is the caller's; this only sends and reads back.
import { constants } from "node:fs";
import { readFile } from "node:fs/promises";
import { request } from "node:https";

export type TObjectStoreResponse = { readonly status: number; readonly body: string };

export async function objectStoreRequest(
  url: URL,
  options: {
    readonly method: string;
    readonly headers: Readonly<Record<string, string>>;
    readonly body?: string;
    readonly caFile?: string;
    readonly timeoutMs?: number;
  },
): Promise<TObjectStoreResponse> {
  // Checked to be in carehost's directories (local-confinement.ts); not through a link put there since.
  const ca =
    options.caFile === undefined
      ? undefined
      : await readFile(options.caFile, { flag: constants.O_RDONLY | constants.O_NOFOLLOW });
  const timeoutMs = options.timeoutMs ?? 30_000;
  return new Promise<TObjectStoreResponse>((resolve, reject) => {
    const sent = request(
      url,
      { method: options.method, headers: options.headers, timeout: timeoutMs, ...(ca === undefined ? {} : { ca }) },
      (response) => {
        let body = "";
        response.on("data", (chunk: Buffer) => (body += chunk.toString("utf8")));
        response.on("end", () => resolve({ status: response.statusCode ?? 0, body }));
        response.on("error", reject);
      },
    );
    sent.on("timeout", () => sent.destroy(new Error(`timed out after ${timeoutMs / 1000} s`)));
    sent.on("error", reject);
    sent.end(options.body);
  });
}

/** The `<Code>` of an XML error answer (Azure and S3 both send one), or the HTTP status. */
export const errorCodeOf = (response: TObjectStoreResponse) =>
  /<Code>([^<]+)<\/Code>/.exec(response.body)?.[1] ?? `HTTP ${response.status}`;
