// Controls over the copies carehost made of environments' data, read from its copies table (what
// a restore did and verified), never from what the spec declares: a spec that says "deidentify"
// proves nothing about the data a restore put there.
import type { TLiveControl } from "./policy-types.js";

const always = () => true;

export const COPY_CONTROLS: readonly TLiveControl[] = [
  {
    id: "CH-DATA-001",
    title: "Non-production copies of PHI are de-identified or classed as PHI",
    citations: ["164.308(a)(4)", "164.312(a)(1)"],
    severity: "critical",
    enforcement: "mandatory",
    subject: "live",
    appliesTo: always,
    check: ({ environment, live }, report) => {
      if (live.copies === undefined) {
        report.notApplicable("carehost's record of copies was not read");
        return;
      }
      const ofPhi = live.copies.filter(
        (copy) => copy.sourceDataClass === "phi" && copy.kind === "environment" && copy.name === environment.name,
      );
      if (ofPhi.length === 0) {
        report.notApplicable("no copy of PHI is recorded in this environment");
        return;
      }
      if (environment.dataClass === "phi") return;
      for (const copy of ofPhi) {
        if (copy.dataClass === "deidentified" && copy.verified) continue;
        report.fail(
          `holds a restore of PHI environment ${JSON.stringify(copy.sourceEnvironment)} recorded as ${copy.dataClass === "deidentified" ? "de-identified without a passed verification" : `data class ${copy.dataClass}`}, and is dataClass ${environment.dataClass}: restore it again with --deidentify, or class the environment phi`,
          { path: "copies", actual: copy.dataClass },
        );
      }
    },
  },
  {
    id: "CH-DATA-002",
    title: "Restored copies of PHI expire and are torn down",
    citations: ["164.308(a)(4)", "164.310(d)(2)(i)"],
    severity: "high",
    enforcement: "mandatory",
    subject: "live",
    appliesTo: always,
    check: ({ environment, live }, report) => {
      if (live.copies === undefined) {
        report.notApplicable("carehost's record of copies was not read");
        return;
      }
      const phiCopies = live.copies.filter(
        (copy) => copy.kind === "copy" && copy.sourceEnvironment === environment.name && copy.dataClass === "phi",
      );
      if (phiCopies.length === 0) {
        report.notApplicable("no live copy of PHI made from this environment");
        return;
      }
      for (const copy of phiCopies) {
        if (copy.expiresAt === null)
          report.fail(`copy ${JSON.stringify(copy.name)} holds PHI and has no expiry`, {
            path: `copies.${copy.name}.expiresAt`,
            actual: null,
          });
        else if (copy.pastExpiry)
          report.fail(
            `copy ${JSON.stringify(copy.name)} holds PHI and is still live past its expiry (${copy.expiresAt}): carehost copies remove ${copy.name}`,
            { path: `copies.${copy.name}.expiresAt`, actual: copy.expiresAt },
          );
      }
    },
  },
];
