import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ValidationError } from "../lib/errors.js";
import { s3CredentialsFrom, signS3Request } from "./s3-bucket.js";

// The worked examples of AWS's "Signature Calculations for the Authorization Header: Transferring
// Payload in a Single Chunk" (example key pair, bucket examplebucket, 24 May 2013).
const EXAMPLE = {
  host: "examplebucket.s3.amazonaws.com",
  region: "us-east-1",
  credentials: { accessKeyId: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY" },
  date: new Date("2013-05-24T00:00:00Z"),
};
const authorization = (signedHeaders: string, signature: string) =>
  `AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=${signedHeaders},Signature=${signature}`;

void describe("S3 Signature Version 4", () => {
  void it("signs AWS's GET Object example (a Range header, empty payload)", () => {
    const signed = signS3Request({ ...EXAMPLE, method: "GET", path: "/test.txt", headers: { Range: "bytes=0-9" } });
    assert.equal(
      signed.headers.Authorization,
      authorization(
        "host;range;x-amz-content-sha256;x-amz-date",
        "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
      ),
    );
    assert.equal(
      signed.headers["x-amz-content-sha256"],
      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    );
    assert.equal(signed.headers["x-amz-date"], "20130524T000000Z");
    assert.equal(signed.pathAndQuery, "/test.txt");
  });

  void it("signs AWS's PUT Object example (a payload, a key with $ encoded once)", () => {
    const signed = signS3Request({
      ...EXAMPLE,
      method: "PUT",
      path: "/test$file.text",
      headers: { Date: "Fri, 24 May 2013 00:00:00 GMT", "x-amz-storage-class": "REDUCED_REDUNDANCY" },
      body: "Welcome to Amazon S3.",
    });
    assert.equal(
      signed.headers.Authorization,
      authorization(
        "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class",
        "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd",
      ),
    );
    assert.equal(
      signed.headers["x-amz-content-sha256"],
      "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072",
    );
    assert.equal(signed.pathAndQuery, "/test%24file.text");
  });

  void it("signs AWS's GET Bucket lifecycle and list-objects examples (sorted, encoded query)", () => {
    const lifecycle = signS3Request({ ...EXAMPLE, method: "GET", path: "/", query: { lifecycle: "" } });
    assert.equal(
      lifecycle.headers.Authorization,
      authorization(
        "host;x-amz-content-sha256;x-amz-date",
        "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543",
      ),
    );
    const list = signS3Request({ ...EXAMPLE, method: "GET", path: "/", query: { prefix: "J", "max-keys": "2" } });
    assert.equal(
      list.headers.Authorization,
      authorization(
        "host;x-amz-content-sha256;x-amz-date",
        "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7",
      ),
    );
    assert.equal(list.pathAndQuery, "/?max-keys=2&prefix=J");
  });
});

void describe("S3 key secret", () => {
  const NAME = "backup/acme-health/offsite-s3-key";

  void it("reads the access key ID from the first line and the secret access key from the second", () => {
    assert.deepEqual(
      s3CredentialsFrom("AKIAIOSFODNN7EXAMPLE\nwJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n", NAME),
      EXAMPLE.credentials,
    );
    assert.deepEqual(
      s3CredentialsFrom("AKIAIOSFODNN7EXAMPLE\r\nwJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", NAME),
      EXAMPLE.credentials,
    );
  });

  void it("refuses any other shape, naming the secret and never echoing the value", () => {
    for (const value of [
      "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
      "AKIAIOSFODNN7EXAMPLE:wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
      "a\nb\nc",
      "AKIA EXAMPLE\nhunter2-value",
      "AKIAIOSFODNN7EXAMPLE\n\n",
    ]) {
      assert.throws(
        () => s3CredentialsFrom(value, NAME),
        (error: unknown) => {
          assert.ok(error instanceof ValidationError);
          assert.ok(error.message.includes(JSON.stringify(NAME)), error.message);
          assert.match(error.message, /access key ID on its first line and the secret access key on its second/);
          for (const part of value.split(/\s|:/).filter((item) => item.length > 1))
            assert.ok(!error.message.includes(part), `the message shows ${part}`);
          return true;
        },
      );
    }
  });
});
