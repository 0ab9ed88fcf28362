// The HTTP server itself: security headers on every answer.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { FastifyInstance } from "fastify";
import { buildServer } from "./server-app.js";
import type { TServerServices } from "./server-services.js";

void describe("the HTTP server's own hardening", () => {
  let app: FastifyInstance;
  let port: number;
  before(async () => {
    const services = { db: { query: async () => ({ rows: [] }) } } as unknown as TServerServices;
    app = await buildServer(services, { logger: false, version: "test" });
    await app.listen({ host: "127.0.0.1", port: 0 });
    const address = app.server.address();
    port = typeof address === "object" && address !== null ? address.port : 0;
  });
  after(async () => app.close());

  void it("sends the usual security headers, on answers and on problems", async () => {
    for (const path of ["/healthz", "/api/no-such-route"]) {
      const response = await fetch(`http://127.0.0.1:${port}${path}`);
      assert.match(response.headers.get("strict-transport-security") ?? "", /max-age=\d+/, path);
      assert.equal(response.headers.get("x-content-type-options"), "nosniff", path);
      assert.match(
        response.headers.get("content-security-policy") ?? "",
        /default-src 'none'.*frame-ancestors 'none'/,
        path,
      );
      assert.equal(response.headers.get("referrer-policy"), "no-referrer", path);
      assert.equal(response.headers.get("x-powered-by"), null, path);
    }
  });
});
