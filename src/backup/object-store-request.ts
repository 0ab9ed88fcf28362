// One HTTPS request to an object store (an Azure container, an S3 bucket), through Node's https
// with the repository's own CA file when it has one: the few calls carehost makes itself, before
// pgBackRest and restic take over. Signing is the caller's; this only sends and reads back.
import { constants } from "node:fs";
import { readFile } from "node:fs/promises";
import { request } from "node:https";

export type TObjectStoreResponse = { readonly status: number; readonly body: string };

/**
 * What carehost reads of an object store's answer: its own calls get a status and at most an XML
 * error or a short listing, so an endpoint that streams without end cannot fill carehost's memory.
 */
export const MAX_OBJECT_STORE_ANSWER_BYTES = 1024 * 1024;

/**
 * Sends one request and reads its answer whole, within `timeoutMs` from the first byte sent to the
 * last byte read (Node's socket timeout alone restarts with every byte, so an endpoint that drips
 * one byte a second would hold a backup, and every backup queued behind it, for ever).
 */
export async function objectStoreRequest(
  url: URL,
  options: {
    readonly method: string;
    readonly headers: Readonly<Record<string, string>>;
    readonly body?: string;
    readonly caFile?: string;
    readonly timeoutMs?: number;
    readonly maxAnswerBytes?: number;
  },
): Promise<TObjectStoreResponse> {
  // Checked to be in carehost's directories (local-confinement.ts); not through a link put there since.
  const ca =
    options.caFile === undefined
      ? undefined
      : await readFile(options.caFile, { flag: constants.O_RDONLY | constants.O_NOFOLLOW });
  const timeoutMs = options.timeoutMs ?? 30_000;
  const maxAnswerBytes = options.maxAnswerBytes ?? MAX_OBJECT_STORE_ANSWER_BYTES;
  const endpoint = `${options.method} ${url.origin}${url.pathname}`;
  return new Promise<TObjectStoreResponse>((settle, fail) => {
    // Called from the request's events only, so after `deadline` below is set.
    const resolve = (answer: TObjectStoreResponse) => {
      clearTimeout(deadline);
      settle(answer);
    };
    const reject = (error: Error) => {
      clearTimeout(deadline);
      fail(error);
    };
    const sent = request(
      url,
      { method: options.method, headers: options.headers, timeout: timeoutMs, ...(ca === undefined ? {} : { ca }) },
      (response) => {
        const chunks: Buffer[] = [];
        let bytes = 0;
        response.on("data", (chunk: Buffer) => {
          bytes += chunk.length;
          if (bytes > maxAnswerBytes) {
            sent.destroy(
              new Error(`${endpoint} answered with more than ${maxAnswerBytes} bytes; carehost stopped reading`),
            );
            return;
          }
          chunks.push(chunk);
        });
        response.on("end", () =>
          resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }),
        );
        response.on("error", reject);
      },
    );
    const deadline = setTimeout(
      () => sent.destroy(new Error(`${endpoint} did not answer in full within ${timeoutMs / 1000} s`)),
      timeoutMs,
    );
    sent.on("timeout", () => sent.destroy(new Error(`${endpoint} timed out after ${timeoutMs / 1000} s`)));
    sent.on("error", reject);
    sent.end(options.body);
  });
}

/** The `<Code>` of an XML error answer (Azure and S3 both send one), or the HTTP status. */
export const errorCodeOf = (response: TObjectStoreResponse) =>
  /<Code>([^<]+)<\/Code>/.exec(response.body)?.[1] ?? `HTTP ${response.status}`;
