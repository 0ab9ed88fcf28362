// Which advice a refused certificate gets. Only an issuer the CLI does not trust is cured by
// CAREHOST_CA_FILE; a certificate for another name, or one out of its dates, needs something else.
// The server-transport tests see the self-signed, wrong-name and expired cases from a real server;
// these are OpenSSL's other codes for an untrusted issuer, which need a CA hierarchy to provoke.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { certificateAdvice } from "./cli-trust.js";

const url = "https://carehost.internal:8443";

void describe("certificateAdvice", () => {
  void it("asks for CAREHOST_CA_FILE for every code that means the issuer is not trusted", () => {
    for (const code of [
      "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
      "SELF_SIGNED_CERT_IN_CHAIN",
      "DEPTH_ZERO_SELF_SIGNED_CERT",
      "UNABLE_TO_GET_ISSUER_CERT",
      "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
    ])
      assert.match(certificateAdvice({ code }, url) ?? "", /not trusted: set CAREHOST_CA_FILE/, code);
  });

  void it("names the host of a mismatch from the URL when TLS did not say it, and never asks for a CA file", () => {
    const advice = certificateAdvice({ code: "ERR_TLS_CERT_ALTNAME_INVALID" }, url) ?? "";
    assert.match(advice, /not issued for carehost\.internal: /);
    assert.match(advice, /give the server a certificate for carehost\.internal$/);
    assert.doesNotMatch(advice, /CAREHOST_CA_FILE|it names/);
  });

  void it("says a certificate is out of its dates, and no other certificate failure asks for a CA file", () => {
    assert.match(certificateAdvice({ code: "CERT_HAS_EXPIRED" }, url) ?? "", /has expired/);
    assert.match(certificateAdvice({ code: "CERT_NOT_YET_VALID" }, url) ?? "", /not valid yet: check the clock/);
    assert.equal(
      certificateAdvice({ code: "CERT_REVOKED" }, url),
      "the server's certificate was refused (CERT_REVOKED)",
    );
    for (const code of ["CERT_HAS_EXPIRED", "CERT_NOT_YET_VALID", "CERT_REVOKED", "ERR_TLS_CERT_ALTNAME_INVALID"])
      assert.doesNotMatch(certificateAdvice({ code }, url) ?? "", /CAREHOST_CA_FILE/, code);
  });

  void it("has no certificate advice for a server that is not there", () => {
    assert.equal(certificateAdvice({ code: "ECONNREFUSED" }, url), undefined);
    assert.equal(certificateAdvice({}, url), undefined);
  });
});
