// What a client learns of an internal error: that it happened and the request id; the server log
// has the rest under that id.
import assert from "node:assert/strict";
import { PassThrough } from "node:stream";
import { after, before, describe, it } from "node:test";
import type { FastifyInstance } from "fastify";
import { systemContext } from "../lib/request-context.js";
import { runCommand } from "../lib/runtime-command.js";
import { buildServer } from "./server-app.js";
import type { TServerServices } from "./server-services.js";

/** What a failing host command prints: a path of the host, a role, an argument that is nobody's business but the server's. */
const STDERR =
  'FATAL: could not open file "/srv/carehost/runtime/acme/postgres/shared/pg_hba.conf" for role carehost_admin';
const ARGUMENT = "--config=/srv/carehost/runtime/acme/pgbackrest/pgbackrest.conf";

void describe("internal errors: problem+json without internals, details in the server log under the request id", () => {
  let app: FastifyInstance;
  const logLines: Record<string, unknown>[] = [];
  before(async () => {
    const logStream = new PassThrough();
    logStream.on("data", (chunk: Buffer) => {
      for (const line of chunk.toString("utf8").split("\n").filter(Boolean))
        logLines.push(JSON.parse(line) as Record<string, unknown>);
    });
    // The apply route, with a service that fails the way a reconcile does: a real command of the host, exiting non-zero.
    const failingApply = async () => {
      await runCommand(process.execPath, [
        "-e",
        `console.error(${JSON.stringify(STDERR)}); process.exit(4)`,
        "--",
        ARGUMENT,
      ]);
      throw new Error("unreachable: the command fails");
    };
    const services = {
      identity: { authenticate: async () => systemContext("test") },
      environments: { apply: failingApply },
    } as unknown as TServerServices;
    app = await buildServer(services, { logger: { level: "info", stream: logStream }, version: "test" });
  });
  after(async () => app.close());

  void it("answers a failed command with the request id alone, and logs the command line and its stderr under it", async () => {
    const response = await app.inject({
      method: "POST",
      url: "/api/apply",
      headers: { authorization: "Bearer test", "content-type": "application/json" },
      payload: { source: "apiVersion: carehost.io/v1\n", fileName: "org.yaml" },
    });
    assert.equal(response.statusCode, 500);
    assert.equal(response.headers["content-type"], "application/problem+json; charset=utf-8");
    const requestId = String(response.headers["x-request-id"]);
    const problem = response.json<Record<string, unknown>>();
    assert.deepEqual(problem, {
      type: "https://carehost.io/problems/internal-error",
      title: "Internal error",
      status: 500,
      detail: `internal error: the server log has what happened under request ${requestId}; quote it when reporting this`,
      instance: `urn:carehost:request:${requestId}`,
      requestId,
    });
    for (const internal of ["FATAL", "pg_hba.conf", "carehost_admin", ARGUMENT, process.execPath, "exit(4)"])
      assert.ok(!response.body.includes(internal), `the answer shows ${internal}`);

    const logged = logLines.filter((line) => line.reqId === requestId && line.level === 50);
    assert.equal(logged.length, 1, JSON.stringify(logLines));
    const err = logged[0]!.err as { type: string; message: string; command: string; stderr: string };
    assert.equal(err.type, "RuntimeCommandError");
    assert.ok(err.command.includes(ARGUMENT), err.command);
    assert.ok(err.stderr.includes(STDERR), err.stderr);
  });
});
