// Value formats the spec checks beyond what a regular expression can say. Each checker returns
// undefined when the value is fine, or the reason it is not (without repeating the value: the
// caller names it).
import { isIPv4, isIPv6 } from "node:net";

export const DNS_LABEL_PATTERN = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
export const SECRET_REF_PATTERN = /^[a-z0-9]([a-z0-9._-]{0,126}[a-z0-9])?$/;
export const HH_MM_PATTERN = /^([01]\d|2[0-3]):[0-5]\d$/;
export const ODOO_MODULE_PATTERN = /^[a-z][a-z0-9_]*$/;
// Docker image reference: [registry[:port]/]path[:tag][@sha256:digest]. Lowercase path, as registries require.
export const IMAGE_PATTERN =
  /^(?:[a-z0-9.-]+(?::\d+)?\/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$/;

/** Fully qualified host name: lowercase (so uniqueness is well defined), two labels or more, no IP addresses. */
export function fqdnProblem(value: string): string | undefined {
  if (value.length > 253) return "is longer than 253 characters";
  if (value !== value.toLowerCase()) return "must be lowercase";
  const labels = value.split(".");
  if (labels.length < 2) return "is not fully qualified (needs a domain, e.g. erp.example.org)";
  if (!labels.every((label) => DNS_LABEL_PATTERN.test(label)))
    return "is not a host name (labels of a-z, 0-9 and inner hyphens, 1-63 characters)";
  if (/^\d+$/.test(labels[labels.length - 1] ?? "")) return "is an IP address, not a host name";
  return undefined;
}

export function timeZoneProblem(value: string): string | undefined {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: value });
    return undefined;
  } catch {
    return "is not an IANA time zone (e.g. America/New_York)";
  }
}

function ipv4Bits(address: string): bigint {
  return address.split(".").reduce((bits, octet) => (bits << 8n) | BigInt(octet), 0n);
}

function ipv6Bits(address: string): bigint {
  let text = address;
  // An embedded IPv4 tail (::ffff:192.0.2.1) stands for the last two groups.
  const lastColon = text.lastIndexOf(":");
  const tail = text.slice(lastColon + 1);
  if (tail.includes(".")) {
    const v4 = ipv4Bits(tail);
    text = `${text.slice(0, lastColon + 1)}${(v4 >> 16n).toString(16)}:${(v4 & 0xffffn).toString(16)}`;
  }
  const [head = "", rest] = text.split("::");
  const headGroups = head === "" ? [] : head.split(":");
  const restGroups = rest === undefined || rest === "" ? [] : rest.split(":");
  const groups =
    rest === undefined
      ? headGroups
      : [...headGroups, ...Array<string>(8 - headGroups.length - restGroups.length).fill("0"), ...restGroups];
  return groups.reduce((bits, group) => (bits << 16n) | BigInt(`0x${group}`), 0n);
}

/**
 * An IPv4 or IPv6 network in CIDR notation. A prefix is required and host bits must be zero:
 * in an allow-list, "10.1.2.3/16" is ambiguous (a typo for /32, or meant 10.1.0.0/16?).
 */
export function cidrProblem(value: string): string | undefined {
  const slash = value.indexOf("/");
  if (slash < 0) return "has no prefix length (write /32 or /128 for a single address)";
  const address = value.slice(0, slash);
  const prefixText = value.slice(slash + 1);
  const family = isIPv4(address) ? 4 : isIPv6(address) && !address.includes("%") ? 6 : 0;
  if (family === 0) return "does not start with an IPv4 or IPv6 address";
  const width = family === 4 ? 32 : 128;
  if (!/^(0|[1-9]\d{0,2})$/.test(prefixText) || Number(prefixText) > width)
    return `has a prefix length outside 0-${width}`;
  const prefix = BigInt(prefixText);
  const bits = family === 4 ? ipv4Bits(address) : ipv6Bits(address);
  const hostMask = (1n << (BigInt(width) - prefix)) - 1n;
  if ((bits & hostMask) !== 0n)
    return `has host bits set (the network is ${formatNetwork(bits & ~hostMask, family)}/${prefixText})`;
  return undefined;
}

function formatNetwork(bits: bigint, family: 4 | 6): string {
  if (family === 4) return [24n, 16n, 8n, 0n].map((shift) => ((bits >> shift) & 0xffn).toString()).join(".");
  const groups = [112n, 96n, 80n, 64n, 48n, 32n, 16n, 0n].map((shift) => ((bits >> shift) & 0xffffn).toString(16));
  // Compress the longest run of zero groups, as RFC 5952 asks.
  let bestStart = -1;
  let bestLength = 1;
  for (let start = 0; start < 8; start += 1) {
    let length = 0;
    while (start + length < 8 && groups[start + length] === "0") length += 1;
    if (length > bestLength) [bestStart, bestLength] = [start, length];
  }
  if (bestStart < 0) return groups.join(":");
  return `${groups.slice(0, bestStart).join(":")}::${groups.slice(bestStart + bestLength).join(":")}`;
}
