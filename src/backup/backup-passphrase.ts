// One passphrase per cluster and repository, derived from the repository's passphrase in the
// secret store. A cluster's pgBackRest stanza and its filestore's restic repository are encrypted
// under their own passphrase, so what one cluster's processes hold (pgBackRest and the archiver
// get it through their environment) opens no other environment's backups. One secret per
// repository is still all there is to escrow for a restore on a new host: the derivation is
// HKDF-SHA256 and can be done by hand with OpenSSL (see README, "Backups, restores and drills").
import { hkdfSync } from "node:crypto";

export const PASSPHRASE_SALT = "carehost backup passphrase v1";

export type TPassphraseScope = { readonly organization: string; readonly repository: string; readonly stanza: string };

export const passphraseInfo = (scope: TPassphraseScope) => `${scope.organization}/${scope.repository}/${scope.stanza}`;

/** 32 bytes of HKDF-SHA256 of the repository's passphrase, in lowercase hex. */
export function clusterPassphrase(repositoryPassphrase: string, scope: TPassphraseScope): string {
  return Buffer.from(hkdfSync("sha256", repositoryPassphrase, PASSPHRASE_SALT, passphraseInfo(scope), 32)).toString(
    "hex",
  );
}

/**
 * The same derivation as a shell command (OpenSSL 3's kdf), reading the repository's passphrase
 * from `$variable`: for a restore on a new host, and for whoever places a Compose host's secret
 * files. Organization, repository and stanza names are DNS labels, safe inside single quotes.
 */
export const opensslDerivation = (scope: TPassphraseScope, variable = "REPOSITORY_PASSPHRASE"): string =>
  `openssl kdf -keylen 32 -kdfopt digest:SHA256 -kdfopt key:"$${variable}" -kdfopt salt:'${PASSPHRASE_SALT}' -kdfopt info:'${passphraseInfo(scope)}' HKDF | tr -d ':\\n' | tr A-F a-f`;
