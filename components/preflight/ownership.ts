// The ownership check: every path the stack would take (each piece's claims) is looked at on the box by
// the preflight's probe (own.sh's own_state), and a path that belongs to someone else is refused before
// anything changes, so a later destroy can never remove it.
import type { Claim } from "../pieces/observe";
import { ownershipLibrary, q as shellQuote } from "../host/shell";
import type { Check } from "./checks";
import type { Facts } from "./facts";

/** What is at each path the stack would take, as own.sh sees it: `claim.N=<base64 of path TAB state>`. */
export function claimsProbe(claims: readonly Claim[]): string {
    if (claims.length === 0) return "";
    const lines = claims.map((c, i) => `emit claim.${i} "$(printf '%s\\t%s' ${shellQuote(c.path)} "$(own_state ${shellQuote(c.path)})" | b64)"`);
    return `${ownershipLibrary()}\n${lines.join("\n")}`;
}

/**
 * Every path the stack would take is its own already (the box's record), absent, an empty directory,
 * or a file identical to what the stack writes there; anything else belongs to someone, and taking it
 * would let a later destroy remove it. Refused before anything changes, naming the path and what is there.
 */
export function checkOwnership(f: Facts, claims: readonly Claim[]): Check[] {
    const checks: Check[] = [];
    f.claims.forEach((seen, i) => {
        const claim = claims[i];
        if (claim === undefined || claim.path !== seen.path) return;
        const state = seen.state;
        if (state === "absent" || state === "owned") return;
        if (claim.kind === "dir" && state === "empty") return;
        if (claim.kind === "file" && claim.sha256 !== null && state === `file ${claim.sha256}`) return;
        const what = state.startsWith("holds ")
            ? `a directory holding ${state.slice(6).split(" ").map((n) => JSON.stringify(n)).join(", ")}${state.split(" ").length > 4 ? " and more" : ""}`
            : state.startsWith("file ")
              ? "a file with other content"
              : state.startsWith("other ")
                ? `a ${state.slice(6)}`
                : state;
        checks.push({
            id: "ownership",
            level: "error",
            message: `${claim.path}${claim.option ? ` (${claim.option})` : ""} is ${what}, which vllm-workstation did not make; the stack would take it over and remove it on destroy`,
            fix:
                claim.option === null
                    ? `move it away (vllm-workstation keeps its own file there), then run pulumi up again`
                    : `move it away, or set ${claim.option} to a path that does not exist yet or is an empty directory`,
        });
    });
    return checks;
}
