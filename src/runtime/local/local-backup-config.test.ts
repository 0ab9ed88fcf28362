import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { azureEndpointOf } from "./local-backup-config.js";

void describe("Azure endpoints of the spec", () => {
  void it("reads Azurite's as path-style and a sovereign cloud's as host-style, with the port", () => {
    assert.deepEqual(azureEndpointOf({ name: "offsite", account: "devstoreaccount1", endpoint: "https://127.0.0.1:10000/devstoreaccount1" }), { host: "127.0.0.1", port: 10000, pathStyle: true });
    assert.deepEqual(azureEndpointOf({ name: "offsite", account: "northwind", endpoint: "https://northwind.blob.core.usgovcloudapi.net" }), { host: "northwind.blob.core.usgovcloudapi.net", port: 443, pathStyle: false });
  });

  void it("refuses an endpoint that names neither the account's host nor the account, naming the repository and the value", () => {
    assert.throws(
      () => azureEndpointOf({ name: "offsite", account: "northwind", endpoint: "https://backups.example.org/other" }),
      /endpoint "https:\/\/backups\.example\.org\/other" of Azure repository "offsite" names neither the account's host nor the account: give https:\/\/northwind\.<blob service domain>/,
    );
  });
});
