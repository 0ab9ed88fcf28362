// Runs operations that share a key one after another, in call order; different keys run side by
// side. A failed operation does not stop the ones queued behind it.
export const serialQueueByKey = () => {
  const tails = new Map<string, Promise<unknown>>();
  return <T>(key: string, operation: () => Promise<T>): Promise<T> => {
    const run = (tails.get(key) ?? Promise.resolve()).catch(() => undefined).then(operation);
    tails.set(key, run);
    return run;
  };
};
