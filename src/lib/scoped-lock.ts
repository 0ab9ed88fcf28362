// Locks over a scope (an organization) and its parts (its clusters), in call order: an action on
// the whole scope waits for everything before it in that scope and holds up everything after; an
// action on some parts waits only for the whole-scope action before it and for earlier actions on
// those parts. A restore hung on prod's cluster holds up prod's next backup and the next reconcile
// of the organization, never staging's backup. Taking several parts is atomic (queued at once, in
// one call), so two callers taking the same parts in a different order cannot deadlock. A failed
// action does not stop the ones queued behind it.
export const scopedLocks = () => {
  const wholeTails = new Map<string, Promise<unknown>>();
  const partTails = new Map<string, Map<string, Promise<unknown>>>();
  /** Actions queued or running, per scope and per part of a scope. */
  const pending = new Map<string, number>();
  const count = (keys: readonly string[], by: number) => {
    for (const key of keys) {
      const next = (pending.get(key) ?? 0) + by;
      if (next === 0) pending.delete(key);
      else pending.set(key, next);
    }
  };
  const partKey = (scope: string, part: string) => `${scope}\u0000${part}`;
  const queue = <T>(
    keys: readonly string[],
    prior: readonly (Promise<unknown> | undefined)[],
    action: () => Promise<T>,
  ) => {
    count(keys, 1);
    return Promise.allSettled(prior.filter((promise) => promise !== undefined))
      .then(action)
      .finally(() => count(keys, -1));
  };

  return {
    whole: <T>(scope: string, action: () => Promise<T>): Promise<T> => {
      const run = queue([scope], [wholeTails.get(scope), ...(partTails.get(scope)?.values() ?? [])], action);
      wholeTails.set(scope, run);
      // Later part actions wait for this one, which waits for every earlier one.
      partTails.set(scope, new Map());
      return run;
    },
    parts: <T>(scope: string, parts: readonly string[], action: () => Promise<T>): Promise<T> => {
      const tails = partTails.get(scope) ?? new Map<string, Promise<unknown>>();
      partTails.set(scope, tails);
      const run = queue(
        parts.map((part) => partKey(scope, part)),
        [wholeTails.get(scope), ...parts.map((part) => tails.get(part))],
        action,
      );
      for (const part of parts) tails.set(part, run);
      return run;
    },
    /** Whether an action on `part` is queued or running now. */
    partBusy: (scope: string, part: string): boolean => pending.has(partKey(scope, part)),
  };
};
