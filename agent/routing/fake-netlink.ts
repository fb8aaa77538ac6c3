// In-memory RouteNetlink for unit tests of the reconciler.
import type { OwnedRoute, RouteNetlink } from './types.ts';

export class FakeRouteNetlink implements RouteNetlink {
  readonly routes = new Map<string, string>();
  calls = 0;
  /** when set, the next call fails with this error (then clears) */
  failNext: Error | undefined;

  private tick(): void {
    this.calls++;
    const err = this.failNext;
    this.failNext = undefined;
    if (err) throw err;
  }

  async listOwned(): Promise<OwnedRoute[]> {
    this.tick();
    return [...this.routes].map(([dst, via]) => ({ dst, via }));
  }

  async replace(route: OwnedRoute): Promise<void> {
    this.tick();
    this.routes.set(route.dst, route.via);
  }

  async remove(dst: string): Promise<void> {
    this.tick();
    this.routes.delete(dst);
  }
}
