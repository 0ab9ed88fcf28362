// Who is acting, from where, under which request. The server fills it from the authenticated
// request; the CLI's local commands and the scheduler use the "system" actors below. Services
// receive it explicitly so authorization and audit events never guess the caller.

export const roles = ["platform-admin", "operator", "approver", "auditor", "viewer"] as const;
export type TRole = (typeof roles)[number];

/** Every organization, in a role binding: the bootstrap admin's, and a platform team's that runs them all. */
export const ALL_ORGANIZATIONS = "*";

/** A role over one organization (or ALL_ORGANIZATIONS): what authorization reads, never `role` alone. */
export type TRoleBinding = { readonly role: TRole; readonly organization: string };

export type TActor =
  | {
      readonly kind: "user";
      readonly userId: string;
      readonly username: string;
      /** The user's role, as shown (whoami, users); what it grants is in `bindings`. */
      readonly role: TRole;
      readonly bindings: readonly TRoleBinding[];
      readonly tokenId?: string;
    }
  | { readonly kind: "system"; readonly name: string }
  | { readonly kind: "anonymous" };

export type TRequestContext = {
  readonly actor: TActor;
  readonly requestId: string;
  readonly sourceAddress: string;
};

export const systemContext = (name: string, requestId = `system-${Date.now().toString(36)}`): TRequestContext => ({
  actor: { kind: "system", name },
  requestId,
  sourceAddress: "local",
});

/** The name written into audit events and commit messages. */
export const actorName = (
  actor:
    | { readonly kind: "user"; readonly username: string }
    | { readonly kind: "system"; readonly name: string }
    | { readonly kind: "anonymous" },
): string => (actor.kind === "user" ? actor.username : actor.kind === "system" ? `system:${actor.name}` : "anonymous");
