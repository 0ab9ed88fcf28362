import assert from "node:assert/strict";
import { readFile, rm } from "node:fs/promises";
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { localhostCertificate } from "../../test/loopback-tls.js";
import { objectStoreRequest } from "./object-store-request.js";

// An object store that misbehaves the two ways that used to hold every organization's backups: it
// drips its answer a byte at a time (each byte restarts a socket timeout), or it never stops sending.
void describe("a call to an object store is bounded in time and size", () => {
  const directory = join(tmpdir(), `carehost-object-store-${process.pid}`);
  let server: Server;
  let caFile: string;
  let url: (path: string) => URL;

  before(async () => {
    const { certFile, keyFile } = await localhostCertificate(directory, "store");
    caFile = certFile;
    server = createServer({ cert: await readFile(certFile), key: await readFile(keyFile) }, (request, response) => {
      if (request.url === "/drip") {
        response.writeHead(200, { "content-type": "application/xml" });
        const drip = setInterval(() => response.write("<"), 100);
        response.on("close", () => clearInterval(drip));
        return;
      }
      if (request.url === "/flood") {
        response.writeHead(200, { "content-type": "application/xml" });
        const chunk = Buffer.alloc(64 * 1024, "x");
        const pump = () => {
          while (!response.destroyed && response.write(chunk));
        };
        response.on("drain", pump);
        pump();
        return;
      }
      response.writeHead(404, { "content-type": "application/xml" });
      response.end("<Error><Code>NoSuchBucket</Code></Error>");
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as AddressInfo;
    url = (path) => new URL(`https://localhost:${port}${path}`);
  });

  after(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    await rm(directory, { recursive: true, force: true });
  });

  void it("reads an ordinary answer whole", async () => {
    const answer = await objectStoreRequest(url("/bucket"), { method: "GET", headers: {}, caFile });
    assert.equal(answer.status, 404);
    assert.match(answer.body, /NoSuchBucket/);
  });

  void it("gives up on an answer that drips in slower than its deadline, though bytes keep coming", async () => {
    const started = Date.now();
    await assert.rejects(
      objectStoreRequest(url("/drip"), { method: "GET", headers: {}, caFile, timeoutMs: 1500 }),
      /GET https:\/\/localhost:\d+\/drip did not answer in full within 1.5 s/,
    );
    const took = Date.now() - started;
    assert.ok(took < 3000, `gave up after ${took} ms`);
  });

  void it("stops reading an answer larger than its cap", async () => {
    await assert.rejects(
      objectStoreRequest(url("/flood"), { method: "GET", headers: {}, caFile, maxAnswerBytes: 256 * 1024 }),
      /answered with more than 262144 bytes; carehost stopped reading/,
    );
  });
});
