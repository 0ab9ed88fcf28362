// Backups on this host: a pgBackRest backup of an environment's cluster with a restic snapshot of
// the filestores in it, filestore snapshots between backups, expiry by the retention tiers,
// verification of the repositories, and what they hold.
import { pgbackrest, stanzaInfo } from "../../backup/pgbackrest-command.js";
import { combinedRetention, fullBackupsToExpire } from "../../backup/backup-retention.js";
import { resticCheck, resticForget, resticSnapshots } from "../../backup/restic-command.js";
import type {
  TBackupOutcome,
  TBackupType,
  TExpireOutcome,
  TFilestoreSnapshotOutcome,
  TVerifyOutcome,
} from "../../backup/recovery-driver.js";
import type { TOrganizationSpec } from "../../spec/spec-schema.js";
import { elapsedMs } from "./local-context.js";
import type { TLocalContext } from "./local-context.js";
import { filestoreDirectoryOf, filestoreTag, newestChange, snapshotFilestore } from "./local-filestore.js";
import { backupRunId, takeBackup, verifyRepository } from "./local-recovery.js";

export const localBackupFactory = ({
  root,
  now,
  exclusive,
  onInstancesOf,
  recoverable,
  backedUpIn,
}: Pick<TLocalContext, "root" | "now" | "exclusive" | "onInstancesOf" | "recoverable" | "backedUpIn">) => ({
  /**
   * Takes a pgBackRest backup of the environment's cluster (a shared cluster is backed up as a
   * whole), then a restic snapshot of the filestore of every environment in it, tagged with the
   * backup's run id. Backups, restores and drills hold their instance's lock, which a reconcile
   * (holding the whole organization's) waits for: a reconcile must not restart a cluster under a
   * running backup or a drill reading its source.
   */
  backup: (organization: TOrganizationSpec, environmentName: string, type: TBackupType): Promise<TBackupOutcome> =>
    onInstancesOf(organization, [environmentName], async () => {
      const source = await recoverable(organization, environmentName);
      const started = process.hrtime.bigint();
      // One id pairs the database backup (a pgBackRest annotation, in every repository) with the
      // filestore snapshots (a restic tag), so both can run at once: pgBackRest spends part of a
      // backup waiting (the checkpoint, the archiving of its last WAL segment) and restic fills it.
      const runId = backupRunId(now());
      const snapshotAll = async () => {
        const filestore = { files: 0, bytes: 0, bytesAdded: 0 };
        for (const environment of backedUpIn(organization, source.cluster)) {
          const snapshot = await snapshotFilestore(
            source.filestoreRepositories,
            filestoreDirectoryOf(root, organization.metadata.name, environment),
            {
              organization: organization.metadata.name,
              environment: environment.name,
              backupRunId: runId,
            },
          );
          filestore.files += snapshot.files;
          filestore.bytes += snapshot.bytes;
          filestore.bytesAdded += snapshot.bytesAdded;
        }
        return filestore;
      };
      // Both are awaited before either's failure is reported: neither goes on behind carehost's back.
      const [database, filestore] = await Promise.allSettled([takeBackup(source, type, runId), snapshotAll()]);
      if (database.status === "rejected") throw database.reason;
      if (filestore.status === "rejected") throw filestore.reason;
      // Never silently dropped: the result names each declared repository this backup did not reach.
      const declared = new Set(
        backedUpIn(organization, source.cluster).flatMap((environment) => environment.backup.repositories),
      );
      const skippedRepositories = source.backup.skipped.filter((repository) => declared.has(repository.name));
      return {
        stanza: source.backup.access.stanza,
        durationMs: elapsedMs(started),
        runId,
        ...database.value,
        filestore: filestore.value,
        skippedRepositories,
      };
    }),

  /**
   * A filestore snapshot between database backups, when files were added or removed since the
   * newest one: the filestore's own recovery point. Returns undefined when nothing changed.
   */
  snapshotFilestore: (
    organization: TOrganizationSpec,
    environmentName: string,
  ): Promise<TFilestoreSnapshotOutcome | undefined> =>
    onInstancesOf(organization, [environmentName], async () => {
      const source = await recoverable(organization, environmentName);
      const [repository] = source.filestoreRepositories;
      const directory = filestoreDirectoryOf(root, organization.metadata.name, { name: environmentName });
      const newest =
        repository === undefined
          ? undefined
          : (await resticSnapshots(repository, filestoreTag(environmentName)).catch(() => [])).at(-1);
      const changed = await newestChange(directory);
      if (newest !== undefined && (changed === undefined || changed < newest.time)) return undefined;
      const started = process.hrtime.bigint();
      const snapshot = await snapshotFilestore(source.filestoreRepositories, directory, {
        organization: organization.metadata.name,
        environment: environmentName,
      });
      return { ...snapshot, durationMs: elapsedMs(started) };
    }),

  /**
   * Expires what the retention tiers no longer keep: full backups (with the differential and
   * incremental backups and the WAL that depend on them) and filestore snapshots.
   */
  expire: (organization: TOrganizationSpec, environmentName: string): Promise<TExpireOutcome> =>
    exclusive(organization, async () => {
      const source = await recoverable(organization, environmentName);
      const started = process.hrtime.bigint();
      const environments = backedUpIn(organization, source.cluster);
      const retention = combinedRetention(environments.map((environment) => environment.backup.retention));
      const before = await stanzaInfo(source.backup.access);
      // Each repository holds its own backups under its own labels; each is expired on its own.
      for (const index of source.backup.repositories.keys()) {
        const held = before.backups.filter((backup) => backup.repository === index + 1);
        for (const label of fullBackupsToExpire(held, retention, now()))
          await pgbackrest(source.backup.access, "expire", [`--set=${label}`, `--repo=${index + 1}`]);
      }
      const remaining = new Set(
        (await stanzaInfo(source.backup.access)).backups.map((backup) => `${backup.repository}/${backup.label}`),
      );
      const expired = before.backups.filter((backup) => !remaining.has(`${backup.repository}/${backup.label}`));
      let filestoreSnapshots = 0;
      for (const repository of source.filestoreRepositories) {
        for (const environment of environments) {
          filestoreSnapshots += (
            await resticForget(repository, filestoreTag(environment.name), {
              withinDays: retention.daily,
              weekly: retention.weekly,
              monthly: retention.monthly,
            })
          ).length;
        }
      }
      return {
        stanza: source.backup.access.stanza,
        expired: [...new Set(expired.map((backup) => backup.label))],
        reclaimedBytes: expired.reduce((sum, backup) => sum + backup.repositoryBytes, 0),
        filestoreSnapshots,
        durationMs: elapsedMs(started),
      };
    }),

  /** pgbackrest verify over every repository of the environment's stanza, and restic check --read-data of its filestores. */
  verify: (organization: TOrganizationSpec, environmentName: string): Promise<TVerifyOutcome> =>
    exclusive(organization, async () => {
      const source = await recoverable(organization, environmentName);
      const database = await verifyRepository(source);
      const filestores = [];
      for (const repository of source.filestoreRepositories) filestores.push(await resticCheck(repository));
      const ok = database.ok && filestores.every((result) => result.ok);
      const output = [
        database.output,
        ...filestores.filter((result) => !result.ok).map((result) => result.output),
      ].join("\n");
      return { stanza: source.backup.access.stanza, ok, output };
    }),

  backups: async (organization: TOrganizationSpec, environmentName: string) => {
    const source = await recoverable(organization, environmentName);
    return { stanza: source.backup.access.stanza, ...(await stanzaInfo(source.backup.access)) };
  },

  /** The environment's filestore snapshots, per repository (in the order of backup.repositories). */
  filestoreSnapshots: async (organization: TOrganizationSpec, environmentName: string) => {
    const source = await recoverable(organization, environmentName);
    return Promise.all(
      source.filestoreRepositories.map((repository) => resticSnapshots(repository, filestoreTag(environmentName))),
    );
  },
});
