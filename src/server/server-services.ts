import type { TAuditService } from "../audit/audit-service.js";
import type { TEnvironmentService } from "../environments/environment-service.js";
import type { TIdentityService } from "../identity/identity-service.js";
import type { TOidcService } from "../identity/identity-oidc.js";
import type { TExceptionService } from "../policy/policy-exception-service.js";
import type { TSqlClient } from "../store/store-types.js";
import type { TRecoveryService } from "../backup/recovery-service.js";
import type { TGitopsService } from "../gitops/gitops-service.js";
import type { TOperationService } from "../operations/operation-service.js";
import type { TSecretsAdminService } from "../secrets/secrets-admin-service.js";
import type { TStatusService } from "./status-service.js";
import type { TChangeService } from "../governance/change-service.js";
import type { TMonitorService } from "../monitor/monitor-service.js";
import type { TCopiesLifecycle } from "../copies/copies-lifecycle.js";
import type { TAlertService } from "../monitor/monitor-alert-service.js";

/** Everything the HTTP layer calls; built once by the composition root (server-start.ts). */
export type TServerServices = {
  readonly db: Pick<TSqlClient, "query">;
  readonly identity: TIdentityService;
  readonly oidc: TOidcService;
  readonly environments: TEnvironmentService;
  readonly exceptions: TExceptionService;
  readonly audit: TAuditService;
  readonly status: TStatusService;
  readonly secrets: TSecretsAdminService;
  readonly gitops: TGitopsService;
  readonly recovery: TRecoveryService;
  readonly copies: TCopiesLifecycle;
  readonly operations: TOperationService;
  readonly changes: TChangeService;
  readonly monitor: TMonitorService;
  readonly alerts: TAlertService;
};
