// The files Odoo reads on this host: odoo.conf (the database it reaches, the master password's
// hash, its data directory), and the pgpass and environment file libpq takes the password and the
// CA from. Reconcile writes them, observe compares them with what is on disk, render shows
// odoo.conf in a plan.
import { join } from "node:path";
import { hashOdooAdminPassword } from "../../render/odoo/odoo-admin-password.js";
import { renderOdooConf } from "../../render/odoo/odoo-conf.js";
import { generatePassword } from "../../secrets/secrets-generate.js";
import { instanceNameOf } from "../../spec/spec-hosting.js";
import type { TEnvironmentSpec, TOrganizationSpec } from "../../spec/spec-schema.js";
import type { TLocalContext } from "./local-context.js";
import { clusterDirectory, databaseNameOf, databaseRoleOf, odooDirectory, secretNames } from "./local-placement.js";
import type { TCertificateAuthority } from "./runtime-ca.js";
import { readInstanceRecord } from "./runtime-instance.js";

/** Where Debian's odoo package installs the standard addons; used when Odoo is deployed on this host. */
const ODOO_ADDONS_PATH = "/usr/lib/python3/dist-packages/odoo/addons";

export const localOdooFilesFactory = ({ root, secrets }: Pick<TLocalContext, "root" | "secrets">) => {
  const odooConfOf = (
    org: string,
    environment: TEnvironmentSpec,
    ca: TCertificateAuthority,
    port: number,
    adminPasswordHash: string,
  ) =>
    renderOdooConf({
      environment,
      database: {
        host: "127.0.0.1",
        port,
        name: databaseNameOf(environment),
        user: databaseRoleOf(environment),
        sslRootCertPath: ca.certPath,
      },
      adminPasswordHash,
      dataDir: join(odooDirectory(root, org, environment.name), "data"),
      addonsPaths: [ODOO_ADDONS_PATH],
    });

  const odooFiles = async (
    organization: TOrganizationSpec,
    environment: TEnvironmentSpec,
    ca: TCertificateAuthority,
    createSecrets: boolean,
  ) => {
    const org = organization.metadata.name;
    const master = secretNames.odooMasterPassword(org, environment.name);
    const masterHash = secretNames.odooMasterPasswordHash(org, environment.name);
    if (createSecrets) {
      await secrets.ensure(master, () => generatePassword(24));
      const masterPassword = await secrets.current(master);
      await secrets.ensure(masterHash, () => hashOdooAdminPassword(masterPassword));
    }
    const record = await readInstanceRecord(clusterDirectory(root, org, instanceNameOf(environment)));
    const directory = odooDirectory(root, org, environment.name);
    const odooConf = odooConfOf(org, environment, ca, record?.port ?? 0, await secrets.current(masterHash));
    // libpq reads the password and the CA from these, so odoo.conf holds neither.
    const pgpass = `127.0.0.1:${record?.port ?? 0}:${databaseNameOf(environment)}:${databaseRoleOf(environment)}:${await secrets.current(secretNames.databasePassword(org, environment.name))}\n`;
    const odooEnv = `PGPASSFILE=${join(directory, "pgpass")}\nPGSSLROOTCERT=${ca.certPath}\nPGSSLMODE=verify-full\n`;
    return { directory, odooConf, pgpass, odooEnv };
  };

  return { odooConfOf, odooFiles };
};

export type TLocalOdooFiles = ReturnType<typeof localOdooFilesFactory>;
