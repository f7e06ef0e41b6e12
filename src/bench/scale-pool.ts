/** Runs `fn` over `items`, `n` at a time, each item once; returns the failures' messages (none stops the rest); `failed` is told of each. */
export async function pool<T>(items: readonly T[], n: number, fn: (x: T) => Promise<void>, failed: () => void = () => undefined): Promise<string[]> {
  const failures: string[] = [];
  let next = 0;
  await Promise.all(Array.from({ length: Math.max(1, n) }, async () => {
    while (next < items.length) {
      const x = items[next++] as T;
      await fn(x).catch((e: Error) => {
        failures.push(e.message);
        failed();
      });
    }
  }));
  return failures;
}
