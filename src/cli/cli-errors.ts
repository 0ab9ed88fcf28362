// Exit codes are part of the CLI's interface: 0 ok, 1 failure, 2 usage, 3 policy refusal.
export const exitCodes = { ok: 0, failure: 1, usage: 2, policy: 3 } as const;

export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = exitCodes.failure,
    readonly details: readonly string[] = [],
  ) {
    super(message);
  }
}
