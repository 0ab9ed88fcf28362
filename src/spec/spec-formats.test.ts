import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { cidrProblem, fqdnProblem, IMAGE_PATTERN, timeZoneProblem } from "./spec-formats.js";

void describe("cidrProblem", () => {
  void it("accepts IPv4 and IPv6 networks", () => {
    for (const value of [
      "10.0.0.0/8",
      "192.0.2.0/24",
      "203.0.113.7/32",
      "0.0.0.0/0",
      "2001:db8::/32",
      "2001:db8:4e57::/48",
      "::/0",
      "::1/128",
      "fe80::/10",
      "::ffff:192.0.2.0/120",
    ]) {
      assert.equal(cidrProblem(value), undefined, value);
    }
  });

  void it("rejects what is not a network, saying why", () => {
    const cases: Record<string, RegExp> = {
      "10.0.0.0": /no prefix length/,
      "10.0.0.0/33": /prefix length outside 0-32/,
      "2001:db8::/129": /outside 0-128/,
      "10.0.0.0/": /prefix length/,
      "10.0.0.0/08": /prefix length/,
      "10.0.0.0/8/8": /prefix length/,
      "256.0.0.0/8": /IPv4 or IPv6 address/,
      "010.0.0.0/8": /IPv4 or IPv6 address/,
      "10.0.0/24": /IPv4 or IPv6 address/,
      "fe80::1%eth0/64": /IPv4 or IPv6 address/,
      "2001:db8:::/48": /IPv4 or IPv6 address/,
      "example.org/24": /IPv4 or IPv6 address/,
      "10.1.2.3/16": /host bits set \(the network is 10\.1\.0\.0\/16\)/,
      "2001:db8::1/64": /host bits set \(the network is 2001:db8::\/64\)/,
    };
    for (const [value, reason] of Object.entries(cases)) assert.match(cidrProblem(value) ?? "accepted", reason, value);
  });
});

void describe("fqdnProblem", () => {
  void it("accepts lowercase fully qualified names", () => {
    assert.equal(fqdnProblem("erp.northwind-health.example"), undefined);
    assert.equal(fqdnProblem("a.b"), undefined);
  });

  void it("rejects single labels, uppercase, bad labels and IP addresses", () => {
    assert.match(fqdnProblem("localhost") ?? "", /not fully qualified/);
    assert.match(fqdnProblem("ERP.example.org") ?? "", /lowercase/);
    assert.match(fqdnProblem("-erp.example.org") ?? "", /not a host name/);
    assert.match(fqdnProblem("erp..example.org") ?? "", /not a host name/);
    assert.match(fqdnProblem("*.example.org") ?? "", /not a host name/);
    assert.match(fqdnProblem("192.0.2.1") ?? "", /IP address/);
    assert.match(
      fqdnProblem(`${"a".repeat(63)}.${"b".repeat(63)}.${"c".repeat(63)}.${"d".repeat(63)}`) ?? "",
      /longer than 253/,
    );
  });
});

void describe("timeZoneProblem", () => {
  void it("accepts IANA zones and rejects the rest", () => {
    assert.equal(timeZoneProblem("America/New_York"), undefined);
    assert.equal(timeZoneProblem("UTC"), undefined);
    assert.match(timeZoneProblem("America/New York") ?? "", /not an IANA time zone/);
    assert.match(timeZoneProblem("Mars/Olympus_Mons") ?? "", /not an IANA time zone/);
  });
});

void describe("IMAGE_PATTERN", () => {
  void it("accepts tags, registries with ports and digests; rejects uppercase and bad digests", () => {
    for (const image of [
      "odoo:17.0",
      "odoo",
      "registry.example:5000/odoo/odoo:18.0-20250101",
      `odoo:17.0@sha256:${"a".repeat(64)}`,
      `odoo@sha256:${"0".repeat(64)}`,
    ]) {
      assert.match(image, IMAGE_PATTERN, image);
    }
    for (const image of ["Odoo:17.0", "odoo:17.0@sha256:abc", "odoo:", "odoo:17.0 latest"])
      assert.doesNotMatch(image, IMAGE_PATTERN, image);
  });
});
