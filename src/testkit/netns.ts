import type { Runner } from '../exec/index.js';

/**
 * Network namespaces a test file makes, named `TAG-NAME`, all deleted by `removeAll()` (call it from an
 * `after()` hook, so it also runs when a test fails).
 */
export class TestNamespaces {
  private readonly made: string[] = [];

  constructor(private readonly runner: Runner, readonly tag: string) {}

  /** Makes `TAG-NAME` and returns its name. */
  async add(name: string): Promise<string> {
    const ns = `${this.tag}-${name}`;
    await this.runner.run(['ip', 'netns', 'add', ns]);
    this.made.push(ns);
    return ns;
  }

  /** A namespace made some other way (by the code under test), deleted with the rest. */
  adopt(ns: string): void {
    this.made.push(ns);
  }

  async removeAll(): Promise<void> {
    for (const ns of this.made.splice(0)) await this.runner.run(['ip', 'netns', 'del', ns], { allowFailure: true });
  }
}
