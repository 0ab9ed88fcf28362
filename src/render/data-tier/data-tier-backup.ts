// The backup part of the data tier, derived once and rendered by every target: which
// repositories an environment writes (every one it declares, database and filestore alike), how
// each is addressed, the encryption (pgBackRest's aes-256-cbc, restic's own AES-256), and how the
// spec's daily/weekly/monthly tiers map onto pgBackRest's and restic's retention. Pure.
import type { TBackupRepository } from "../../backup/pgbackrest-config.js";
import { ValidationError } from "../../lib/errors.js";
import type { TBackupRepositorySpec, TEnvironmentSpec, TOrganizationSpec } from "../../spec/spec-schema.js";

/** pgBackRest's client-side cipher, written for every repository on every target. */
export const PGBACKREST_CIPHER_TYPE = "aes-256-cbc";

export type TRetentionTiers = { readonly daily: number; readonly weekly: number; readonly monthly: number };

/**
 * Days a full backup must be kept so that the daily, weekly and monthly tiers all hold: pgBackRest
 * expires by time (`repoN-retention-full-type=time`) beyond that floor only, on every target, so a
 * target without carehost's tier expiry (Compose, Kubernetes) keeps more than the tiers, never less.
 * The local runtime thins full backups down to the tiers with `expire --set` (backup-retention.ts).
 */
export const retentionDays = (tiers: TRetentionTiers): number =>
  Math.max(1, tiers.daily, tiers.weekly * 7, tiers.monthly * 31);

/** The tiers of environments sharing one cluster: each tier as long as the longest asks. */
export const combinedTiers = (tiers: readonly TRetentionTiers[]): TRetentionTiers => ({
  daily: Math.max(0, ...tiers.map((tier) => tier.daily)),
  weekly: Math.max(0, ...tiers.map((tier) => tier.weekly)),
  monthly: Math.max(0, ...tiers.map((tier) => tier.monthly)),
});

/** pgBackRest's retention lines of repository `repo` (repo1, repo2, …). */
export const pgbackrestRetentionLines = (repo: string, tiers: TRetentionTiers): string[] => [
  `${repo}-retention-full-type=time`,
  `${repo}-retention-full=${retentionDays(tiers)}`,
];

/** restic's `forget` by the same tiers: every snapshot of the daily window, then one a week, one a month. */
export const filestoreForgetArguments = (tiers: TRetentionTiers): string[] => [
  "--keep-last",
  "1",
  ...(tiers.daily > 0 ? ["--keep-within", `${tiers.daily}d`] : []),
  ...(tiers.weekly > 0 ? ["--keep-weekly", String(tiers.weekly)] : []),
  ...(tiers.monthly > 0 ? ["--keep-monthly", String(tiers.monthly)] : []),
];

/** Where in each repository an environment's (or a cluster's) filestore lives, beside pgBackRest's files. */
export const filestorePathOf = (stanza: string) => `filestore/${stanza}`;

/** The repositories an environment's backups go to, in the order pgBackRest numbers them (repo1, repo2…). */
export function declaredRepositoriesOf(
  organization: TOrganizationSpec,
  environment: TEnvironmentSpec,
): readonly TBackupRepositorySpec[] {
  if (!environment.backup.enabled) return [];
  return environment.backup.repositories.map((name) => {
    const repository = organization.backupRepositories.find((candidate) => candidate.name === name);
    if (repository === undefined) {
      throw new TypeError(
        `environment ${JSON.stringify(environment.name)}: backup repository ${JSON.stringify(name)} is not in backupRepositories`,
      );
    }
    return repository;
  });
}

/**
 * An Azure endpoint of the spec as pgBackRest and restic address it: path-style when the account is
 * first in the path (Azurite: https://host:port/<account>), otherwise host-style, where the host
 * must be the account's own (https://<account>.blob.core.usgovcloudapi.net for a sovereign cloud).
 */
export const azureEndpointOf = (spec: {
  readonly name: string;
  readonly account: string;
  readonly endpoint: string;
}) => {
  const url = new URL(spec.endpoint);
  const port = url.port === "" ? 443 : Number(url.port);
  if (url.pathname.split("/").filter(Boolean)[0] === spec.account) return { host: url.hostname, port, pathStyle: true };
  if (!url.hostname.startsWith(`${spec.account}.`) || url.pathname !== "/") {
    throw new ValidationError(
      `endpoint ${JSON.stringify(spec.endpoint)} of Azure repository ${JSON.stringify(spec.name)} names neither the account's host nor the account: give https://${spec.account}.<blob service domain>[:port], or https://host[:port]/${spec.account} for a path-style endpoint such as Azurite`,
    );
  }
  return { host: url.hostname, port, pathStyle: false };
};

type TRepositorySpecOf<K extends TBackupRepositorySpec["type"]> = Extract<TBackupRepositorySpec, { type: K }>;

/** An S3 endpoint: AWS's own for the region (virtual-host URIs), or the spec's https://host[:port] (path-style URIs, as S3-compatible stores expect). */
export const s3EndpointOf = (spec: TRepositorySpecOf<"s3">) => {
  if (spec.endpoint === undefined) return { host: `s3.${spec.region}.amazonaws.com`, port: 443, pathStyle: false };
  const url = new URL(spec.endpoint);
  if (url.pathname !== "/" || url.search !== "") {
    throw new ValidationError(
      `endpoint ${JSON.stringify(spec.endpoint)} of S3 repository ${JSON.stringify(spec.name)} has a path; give https://host[:port] (the bucket goes in bucket:)`,
    );
  }
  return { host: url.hostname, port: url.port === "" ? 443 : Number(url.port), pathStyle: true };
};

/**
 * A declared repository as a container target writes it: a posix repository is a volume mounted
 * under `posixRoot`, an object store is addressed as on the host, under `prefix` (one per
 * organization and environment). A CA file of the spec is a host path and is not carried over.
 */
export function containerRepositoryOf(
  spec: TBackupRepositorySpec,
  { posixRoot, prefix }: { readonly posixRoot: string; readonly prefix: string },
): TBackupRepository {
  if (spec.type === "posix") return { name: spec.name, type: "posix", path: `${posixRoot}/${spec.name}` };
  if (spec.type === "azure")
    return {
      name: spec.name,
      type: "azure",
      account: spec.account,
      container: spec.container,
      path: prefix,
      ...(spec.endpoint === undefined ? {} : { endpoint: azureEndpointOf({ ...spec, endpoint: spec.endpoint }) }),
    };
  return {
    name: spec.name,
    type: "s3",
    bucket: spec.bucket,
    region: spec.region,
    path: prefix,
    endpoint: s3EndpointOf(spec),
  };
}

/** How restic reaches a repository from a container: its `-r` location, and the variables that carry the key. */
export type TResticTarget = {
  readonly repository: string;
  readonly location: string;
  /** Variables restic reads besides RESTIC_PASSWORD; values are secrets unless listed in `plain`. */
  readonly keyVariables: readonly string[];
  readonly plain: Readonly<Record<string, string>>;
  readonly flags: readonly string[];
};

/**
 * restic's location of the filestore in a repository, with its native backends (the image needs
 * no rclone). An Azure endpoint in path style (an emulator) is not one restic's azure backend can
 * address: that is an error naming the repository rather than a repository silently left out.
 */
export function resticTargetOf(repository: TBackupRepository, path: string): TResticTarget {
  if (repository.type === "posix")
    return {
      repository: repository.name,
      location: `${repository.path}/${path}`,
      keyVariables: [],
      plain: {},
      flags: [],
    };
  if (repository.type === "s3") {
    const { host, port, pathStyle } = repository.endpoint;
    return {
      repository: repository.name,
      location: `s3:https://${port === 443 ? host : `${host}:${port}`}/${repository.bucket}${repository.path}/${path}`,
      keyVariables: ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"],
      plain: { AWS_DEFAULT_REGION: repository.region },
      flags: pathStyle ? ["-o", "s3.bucket-lookup=path"] : [],
    };
  }
  if (repository.endpoint?.pathStyle === true)
    throw new ValidationError(
      `Azure repository ${JSON.stringify(repository.name)} has a path-style endpoint (${repository.endpoint.host}), which restic's azure backend cannot address; the filestore could not be backed up there`,
    );
  const suffix =
    repository.endpoint === undefined ? undefined : repository.endpoint.host.slice(repository.account.length + 1);
  return {
    repository: repository.name,
    location: `azure:${repository.container}:${repository.path}/${path}`,
    keyVariables: ["AZURE_ACCOUNT_KEY"],
    plain: {
      AZURE_ACCOUNT_NAME: repository.account,
      ...(suffix === undefined ? {} : { AZURE_ENDPOINT_SUFFIX: suffix }),
    },
    flags: [],
  };
}

/** resticTargetOf, or why restic cannot reach the repository (a target renders that reason instead of the job). */
export const resticTargetIfAny = (repository: TBackupRepository, path: string): TResticTarget | string => {
  try {
    return resticTargetOf(repository, path);
  } catch (error) {
    if (error instanceof ValidationError) return error.message;
    throw error;
  }
};
