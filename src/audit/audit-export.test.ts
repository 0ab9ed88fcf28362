// The offline bundle, checked by the auditor's script in a separate process that has no access
// to the database.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { aliceContext, createAuditHarness, sampleEvent } from "../../test/audit-fixtures.js";
import { forEachStoreKind } from "../../test/test-databases.js";
import type { TAuditBundle } from "./audit-types.js";

const script = fileURLToPath(new URL("../../tools/verify-audit-bundle.mjs", import.meta.url));

const runVerifier = async (bundle: unknown): Promise<{ status: number | null; output: string }> => {
  const dir = await mkdtemp(join(tmpdir(), "carehost-bundle-"));
  try {
    const path = join(dir, "bundle.json");
    await writeFile(path, typeof bundle === "string" ? bundle : JSON.stringify(bundle, null, 2));
    const result = spawnSync(process.execPath, [script, path], { encoding: "utf8" });
    return { status: result.status, output: `${result.stdout}${result.stderr}` };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
};

/** Entries at 10:00, 10:01, … so a time range selects a known slice. */
const clockFrom = (start: string) => {
  let minutes = 0;
  return { now: () => new Date(Date.parse(start) + minutes * 60_000), tick: () => (minutes += 1) };
};

forEachStoreKind((kind, createDatabase) => {
  void describe(`audit export on ${kind}`, () => {
    void it("exports a time range that the offline script verifies, and catches a flipped byte", async () => {
      const clock = clockFrom("2026-03-01T10:00:00.000Z");
      const harness = await createAuditHarness(createDatabase, { now: clock.now });
      try {
        for (let index = 0; index < 30; index += 1) {
          await harness.log.append(aliceContext, sampleEvent(index));
          clock.tick();
          if (index === 19) await harness.log.checkpoint();
        }
        const bundle: TAuditBundle = await harness.log.exportBundle({
          from: new Date("2026-03-01T10:05:00.000Z"),
          to: new Date("2026-03-01T10:24:00.000Z"),
        });
        assert.deepEqual(
          bundle.entries.map((item) => item.seq),
          Array.from({ length: 20 }, (_, index) => index + 5),
        );
        assert.equal(bundle.checkpoint.treeSize, 30);
        assert.equal(bundle.previousCheckpoint?.treeSize, 20);
        assert.equal(bundle.publicKeys.length, 1);
        assert.doesNotMatch(JSON.stringify(bundle), /PRIVATE KEY/);

        const good = await runVerifier(bundle);
        assert.equal(good.status, 0, good.output);
        assert.match(
          good.output,
          /OK: 20 entries \(#5–#24\) included in the checkpoint of tree size 30 .* consistent with the checkpoint of tree size 20/,
        );

        // One byte of entry #9 changed ("password" → "passwore").
        const flipped = structuredClone(bundle) as unknown as { entries: { seq: number; entry: string }[] };
        flipped.entries[4]!.entry = flipped.entries[4]!.entry.replace("bad password #9", "bad passwore #9");
        assert.notEqual(flipped.entries[4]!.entry, bundle.entries[4]!.entry);
        const bad = await runVerifier(flipped);
        assert.equal(bad.status, 1, bad.output);
        assert.match(
          bad.output,
          /FAIL: entry #9 \(auth\.login\.failed by alice at 2026-03-01T10:09:00\.000Z\) is not in the signed tree of 30 entries/,
        );

        const dropped = { ...bundle, entries: bundle.entries.filter((item) => item.seq !== 12) };
        const gap = await runVerifier(dropped);
        assert.equal(gap.status, 1);
        assert.match(gap.output, /entry #12 is missing from the bundle/);

        const resigned = { ...bundle, checkpoint: { ...bundle.checkpoint, treeSize: 31 } };
        const badSignature = await runVerifier(resigned);
        assert.equal(badSignature.status, 1);
        assert.match(badSignature.output, /checkpoint \(tree size 31.*\) has an invalid signature/);

        const forked = { ...bundle, consistencyProof: [...(bundle.consistencyProof ?? [])].reverse() };
        const inconsistent = await runVerifier(forked);
        assert.equal(inconsistent.status, 1);
        assert.match(inconsistent.output, /previous checkpoint \(tree size 20\) is not a prefix/);

        assert.equal((await runVerifier("not json")).status, 1);
      } finally {
        await harness.dispose();
      }
    });

    void it("exports an empty range with a signed checkpoint", async () => {
      const harness = await createAuditHarness(createDatabase);
      try {
        await harness.log.append(aliceContext, sampleEvent(0));
        const bundle = await harness.log.exportBundle({
          from: new Date("2000-01-01T00:00:00Z"),
          to: new Date("2000-01-02T00:00:00Z"),
        });
        assert.equal(bundle.entries.length, 0);
        const result = await runVerifier(bundle);
        assert.equal(result.status, 0, result.output);
      } finally {
        await harness.dispose();
      }
    });
  });
});
