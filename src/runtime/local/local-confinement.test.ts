// Paths a spec names stay in carehost's directories: on a real filesystem, with real symbolic links.
import assert from "node:assert/strict";
import { mkdir, mkdtemp, readFile, rm, stat, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { ValidationError } from "../../lib/errors.js";
import type { TBackupRepositorySpec } from "../../spec/spec-schema.js";
import { prepareBackupDirectories } from "./local-backup-config.js";
import { assertRepositoriesConfined } from "./local-confinement.js";
import type { THostPaths } from "./local-confinement.js";
import { serviceUser } from "../../lib/runtime-command.js";
import { writeFileIfChanged } from "./runtime-files.js";

const posix = (path: string): TBackupRepositorySpec => ({ name: "local", type: "posix", path });
const s3 = (caFile: string): TBackupRepositorySpec => ({
  name: "offsite",
  type: "s3",
  bucket: "acme-backups",
  region: "us-east-1",
  keySecretRef: "offsite-key",
  caFile,
});

/** The refusal's message, or undefined when the repositories are accepted. */
const refusal = async (
  organization: string,
  repositories: readonly TBackupRepositorySpec[],
  paths: THostPaths,
): Promise<ValidationError | undefined> => {
  try {
    await assertRepositoriesConfined(organization, repositories, paths);
    return undefined;
  } catch (error) {
    assert.ok(error instanceof ValidationError, String(error));
    return error;
  }
};

void describe("local runtime: the host paths a spec names", () => {
  let scratch: string;
  let home: string;
  let allowed: string;
  let outside: string;
  before(async () => {
    scratch = await mkdtemp(join(tmpdir(), "carehost-confine-"));
    home = join(scratch, "home");
    allowed = join(scratch, "srv-backups");
    outside = join(scratch, "elsewhere");
    for (const directory of [home, allowed, outside, join(home, "state")]) await mkdir(directory, { recursive: true });
  });
  after(async () => rm(scratch, { recursive: true, force: true }));

  void it("refuses an absolute repository path outside the data dir, naming the field, the value and how to allow it", async () => {
    const error = await refusal("etc", [posix("/")], { home, allowedRoots: [] });
    assert.equal(
      error?.message,
      `backupRepositories[0].path: "/" (/etc) is outside the allowed roots (${home} (the data dir)); set CAREHOST_ALLOWED_PATHS on the host to allow it`,
    );
    assert.deepEqual(
      error?.details.map((detail) => detail.path),
      ["backupRepositories[0].path"],
    );
    // The host's operator allows a root; the spec alone cannot.
    assert.equal((await refusal("acme", [posix(allowed)], { home, allowedRoots: [] })) !== undefined, true);
    assert.equal(await refusal("acme", [posix(allowed)], { home, allowedRoots: [allowed] }), undefined);
    assert.equal(
      await refusal("acme", [posix(`${allowed}/nested/deeper`)], { home, allowedRoots: [allowed] }),
      undefined,
    );
    // A sibling whose name starts like the root is not under it.
    assert.ok(await refusal("acme", [posix(`${allowed}-other`)], { home, allowedRoots: [allowed] }));
  });

  void it("accepts the data dir, but none of carehost's own entries in it, nor a path that holds the data dir", async () => {
    assert.equal(await refusal("acme", [posix("backups/")], { home, allowedRoots: [] }), undefined);
    assert.equal(await refusal("acme", [posix(".")], { home, allowedRoots: [] }), undefined);
    for (const [path, organization, entry] of [
      [".", "state", "state"],
      ["state", "acme", "state"],
      ["runtime", "acme", "runtime"],
      ["final-backups", "acme", "final-backups"],
      ["./gitops/", "acme", "gitops"],
    ] as const) {
      const error = await refusal(organization, [posix(path)], { home, allowedRoots: [] });
      assert.match(
        error?.message ?? "accepted",
        new RegExp(
          `^backupRepositories\\[0\\]\\.path: ".*" \\(.*\\) lies in ${join(home, entry)}, where carehost keeps `,
        ),
        `${path} for ${organization}`,
      );
    }
    // An allowed root above the data dir does not make the data dir itself a repository.
    const over = await refusal("home", [posix(scratch)], { home, allowedRoots: [scratch] });
    assert.match(over?.message ?? "accepted", /would hold carehost's data dir/);
  });

  void it("follows symbolic links before it decides: a link in the data dir or an allowed root does not lead out", async () => {
    await symlink(outside, join(home, "linked"));
    await symlink(join(home, "state"), join(allowed, "to-state"));
    const linked = await refusal("acme", [posix("linked/")], { home, allowedRoots: [allowed] });
    assert.match(
      linked?.message ?? "accepted",
      new RegExp(
        `"linked/" \\(${join(home, "linked", "acme")}, through a symbolic link ${join(outside, "acme")}\\) is outside`,
      ),
    );
    const intoState = await refusal("acme", [posix(join(allowed, "to-state"))], { home, allowedRoots: [allowed] });
    assert.match(intoState?.message ?? "accepted", /through a symbolic link .* lies in .*state, where carehost keeps/);
  });

  void it("confines CA files the same way, and reports every offending field at once", async () => {
    await writeFile(join(allowed, "ca.pem"), "not read here\n");
    assert.equal(await refusal("acme", [s3(join(allowed, "ca.pem"))], { home, allowedRoots: [allowed] }), undefined);
    const error = await refusal("acme", [posix("/var/lib"), s3("/etc/shadow"), s3("master.key")], {
      home,
      allowedRoots: [allowed],
    });
    assert.deepEqual(
      error?.details.map((detail) => detail.path),
      ["backupRepositories[0].path", "backupRepositories[1].caFile", "backupRepositories[2].caFile"],
    );
    assert.match(error?.message ?? "", /^3 paths of the spec lead outside carehost's directories: /);
    assert.match(
      error?.details[1]?.message ?? "",
      /^backupRepositories\[1\]\.caFile: "\/etc\/shadow" \(\/etc\/shadow\) is outside/,
    );
    assert.match(
      error?.details[2]?.message ?? "",
      /lies in .*master\.key, where carehost keeps the secret store's master key/,
    );
  });

  void it("hands the backup account only the directories it creates, never one that was there", async (t) => {
    const owner = await serviceUser("postgres");
    if (owner === undefined) return t.skip("needs root, to change owners");
    const cluster = join(home, "runtime", "acme", "postgres", "shared");
    const existing = join(allowed, "made-by-the-operator");
    await mkdir(existing);
    const directories = {
      workDirectory: join(cluster, "pgbackrest"),
      socketDirectory: join(cluster, "run"),
    };
    await assert.rejects(
      prepareBackupDirectories({ ...directories, repositoryPaths: [join(allowed, "fresh"), existing] }, owner),
      (error: unknown) =>
        error instanceof ValidationError &&
        error.message.startsWith(`${existing} exists and belongs to uid 0, not to ${owner.name}`) &&
        /does not change the owner of what it did not create/.test(error.message),
    );
    assert.equal((await stat(existing)).uid, 0, "the operator's directory keeps its owner");
    assert.equal((await stat(join(allowed, "fresh"))).uid, owner.uid, "what carehost created is the account's");
    assert.equal((await stat(allowed)).uid, 0, "a parent is never handed over");
    // A link where a repository directory should be is refused, not followed.
    await symlink(outside, join(allowed, "link"));
    await assert.rejects(
      prepareBackupDirectories({ ...directories, repositoryPaths: [join(allowed, "link")] }, owner),
      /is not a directory \(a symbolic link, which carehost does not follow\)/,
    );
    assert.equal((await stat(outside)).uid, 0);
    // Run again over what it made itself: nothing to refuse.
    await prepareBackupDirectories({ ...directories, repositoryPaths: [join(allowed, "fresh")] }, owner);
  });

  void it("does not write a rendered file through a symbolic link the service account put in its place", async () => {
    const victim = join(outside, "shadow");
    await writeFile(victim, "root's file\n", { mode: 0o600 });
    const conf = join(home, "pgbackrest.conf");
    await symlink(victim, conf);
    await assert.rejects(
      writeFileIfChanged(conf, "[global]\n", { mode: 0o640, owner: await serviceUser("postgres") }),
      /pgbackrest\.conf is a symbolic link; carehost does not write through one/,
    );
    assert.equal(await readFile(victim, "utf8"), "root's file\n");
    assert.equal((await stat(victim)).uid, process.getuid?.());
    assert.equal((await stat(victim)).mode & 0o777, 0o600);
  });
});
