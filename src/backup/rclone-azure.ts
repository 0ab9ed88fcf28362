// How restic reaches an Azure Blob container: through rclone (`restic -r rclone:…`, which runs
// `rclone serve restic --stdio`), because Debian's restic 0.14 addresses only
// https://<account>.blob.core.windows.net. rclone is configured entirely through its environment
// (RCLONE_CONFIG_<REMOTE>_*), so the shared key never reaches a file or argv. Pure.
//
// What Debian's rclone 1.60 can address, found by running it (README, "The filestore"):
// - with account and shared key it always calls https://<account>.<endpoint>: `endpoint` is a host
//   suffix, so public Azure, sovereign clouds and private endpoints named <account>.<suffix> work;
// - a path-style endpoint (https://host:port/<account>, Azurite's form) is reachable only in its
//   emulator mode, which takes the endpoint as a whole URL but signs as Azurite's development
//   account devstoreaccount1 whatever account is set (rclone 1.61+ honours the account and key
//   there too, so both are passed anyway).
import type { TAzureRepository } from "./pgbackrest-config.js";

/** The account Azurite ships with, the only one rclone 1.60's emulator mode signs as. */
export const EMULATOR_ACCOUNT = "devstoreaccount1";

/** The rclone remote's name in the environment; each restic run has its own environment, so one name serves every repository. */
const REMOTE = "CAREHOST";

/** The endpoint as people write it, for messages: never a credential. */
export const azureEndpointUrl = (repository: TAzureRepository): string => {
  const endpoint = repository.endpoint;
  if (endpoint === undefined) return `https://${repository.account}.blob.core.windows.net`;
  return `https://${endpoint.host}${endpoint.port === 443 ? "" : `:${endpoint.port}`}${endpoint.pathStyle ? `/${repository.account}` : ""}`;
};

/** Why rclone 1.60 cannot reach the container, or undefined when it can. */
export function rcloneAzureLimitation(repository: TAzureRepository): string | undefined {
  const endpoint = repository.endpoint;
  if (endpoint === undefined) return undefined;
  const where = `endpoint ${azureEndpointUrl(repository)}`;
  if (endpoint.pathStyle) {
    if (repository.account === EMULATOR_ACCOUNT) return undefined;
    return `the filestore cannot be written there: Debian's rclone 1.60 reaches a path-style ${where} only as Azurite's account ${EMULATOR_ACCOUNT}, not ${repository.account}; use that account, or an endpoint of the form https://${repository.account}.<suffix>`;
  }
  if (!endpoint.host.startsWith(`${repository.account}.`)) {
    return `the filestore cannot be written there: rclone addresses Azure as https://<account>.<suffix>, and the host of ${where} does not begin with ${repository.account}.`;
  }
  return undefined;
}

/**
 * restic's location and environment for a filestore prefix (`filestore/<stanza>`) beside
 * pgBackRest's path in the container. The caller has checked `rcloneAzureLimitation`.
 */
export function resticAzureLocation(
  repository: TAzureRepository,
  key: string,
  path: string,
): { location: string; env: Record<string, string> } {
  const variable = (name: string) => `RCLONE_CONFIG_${REMOTE}_${name}`;
  const endpoint = repository.endpoint;
  const addressing: Record<string, string> =
    endpoint === undefined
      ? {}
      : endpoint.pathStyle
        ? { [variable("USE_EMULATOR")]: "true", [variable("ENDPOINT")]: azureEndpointUrl(repository) }
        : {
            [variable("ENDPOINT")]:
              `${endpoint.host.slice(repository.account.length + 1)}${endpoint.port === 443 ? "" : `:${endpoint.port}`}`,
          };
  const prefix = [...repository.path.split("/"), ...path.split("/")].filter(Boolean).join("/");
  return {
    location: `rclone:${REMOTE.toLowerCase()}:${repository.container}/${prefix}`,
    env: {
      // No rclone.conf is read: everything rclone knows is here.
      RCLONE_CONFIG: "/dev/null",
      [variable("TYPE")]: "azureblob",
      [variable("ACCOUNT")]: repository.account,
      [variable("KEY")]: key,
      ...addressing,
      ...(repository.caFile === undefined ? {} : { RCLONE_CA_CERT: repository.caFile }),
    },
  };
}
