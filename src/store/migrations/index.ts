// The one ordered, forward-only list of schema migrations. Never edit a migration that has
// shipped: add a new one. The runner refuses to start when an applied migration's text changed.
import { coreMigration } from "./0001-core.js";
import { auditMigration } from "./0002-audit.js";
import { identityMigration } from "./0003-identity.js";
import { secretsMigration } from "./0004-secrets.js";
import { recoveryMigration } from "./0005-recovery.js";
import { filestoreRunsMigration } from "./0006-filestore-runs.js";
import { restoreRunsMigration } from "./0007-restore-runs.js";
import { runProgressMigration } from "./0008-run-progress.js";
import { roleBindingsMigration } from "./0009-role-bindings.js";
import { policyExceptionsMigration } from "./0010-policy-exceptions.js";
import { loginAttemptsPerSourceMigration } from "./0011-login-attempts-per-source.js";
import { tokenExpiryMigration } from "./0012-token-expiry.js";
import { changeRequestsMigration } from "./0013-change-requests.js";
import { operationsMigration } from "./0014-operations.js";
import { changeDrillsMigration } from "./0015-change-drills.js";
import { filestoreChecksMigration } from "./0016-filestore-checks.js";
import { oidcMigration } from "./0017-oidc.js";
import { copiesMigration } from "./0018-copies.js";
import { alertsMigration } from "./0019-alerts.js";
import { runOperationsMigration } from "./0020-run-operations.js";
import { secondFactorMigration } from "./0021-second-factor.js";

export type TMigration = { readonly id: number; readonly name: string; readonly sql: string };

export const migrations: readonly TMigration[] = [
  coreMigration,
  auditMigration,
  identityMigration,
  secretsMigration,
  recoveryMigration,
  filestoreRunsMigration,
  restoreRunsMigration,
  runProgressMigration,
  roleBindingsMigration,
  policyExceptionsMigration,
  loginAttemptsPerSourceMigration,
  tokenExpiryMigration,
  changeRequestsMigration,
  operationsMigration,
  changeDrillsMigration,
  filestoreChecksMigration,
  oidcMigration,
  copiesMigration,
  alertsMigration,
  runOperationsMigration,
  secondFactorMigration,
];
