// The Hub double's fixtures: generated at bench time, each served by an endpoint of its own, and what
// the endpoints' request logs say was fetched.
import * as fs from "fs";
import { HfEndpoint, makeHfFixture, RequestLogEntry, startHfEndpoint } from "../../tests/infra/servers/index";
import { MiB, RATE, REPO } from "./options";
import { size } from "./table";

/** GETs of the repository's files (not the API, not tiktoken), each with its file name. */
export function fileGets(entries: RequestLogEntry[], hub: HfEndpoint): Array<RequestLogEntry & { file: string }> {
    const prefix = `/${REPO}/resolve/`;
    return entries
        .filter((e) => e.method === "GET" && e.path.startsWith(prefix))
        .map((e) => ({ ...e, file: e.path.slice(prefix.length).split("/").slice(1).join("/") }))
        .filter((e) => e.file in hub.repo.files);
}

/** The fixtures and endpoints of one bench run; stop() ends the endpoints and deletes the large fixtures unless they are kept. */
export class Fixtures {
    /** Fixture roots to delete afterwards (the small ones are shared with the tests and stay). */
    private readonly made: string[] = [];
    private readonly hubs: HfEndpoint[] = [];

    constructor(private readonly setup: Record<string, number>) {}

    async fixture(bytes: number) {
        const t0 = Date.now();
        const f = await makeHfFixture([{ repoId: REPO, weightsBytes: bytes }]);
        this.setup[`fixture ${size(bytes)} ms`] = Date.now() - t0;
        if (bytes > 64 * MiB && !this.made.includes(f.root)) this.made.push(f.root);
        return f;
    }

    /** An endpoint serving the fixture of `bytes`, each response body capped at `rate` bytes per second. */
    async hubFor(bytes: number, rate = RATE): Promise<HfEndpoint> {
        await this.fixture(bytes);
        const hub = await startHfEndpoint({ repos: [{ repoId: REPO, weightsBytes: bytes }], rateLimitBytesPerSec: rate });
        this.hubs.push(hub);
        return hub;
    }

    stopAll(): Array<Promise<void>> {
        return this.hubs.map((h) => h.stop());
    }

    deleteMade(): void {
        for (const root of this.made) fs.rmSync(root, { recursive: true, force: true });
    }
}
