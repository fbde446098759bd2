// Credentials in URLs (`https://user:token@index.example/simple`): what a message may show of such a
// URL, and what must be taken out of any text that reaches the person at the keyboard or the state.
// Free of Pulumi and of the other components: HostState's provider steps load it too.

const userinfo = /^([a-z][a-z0-9+.-]*:\/\/)[^/?#]*@/i;

/** A URL for messages and scripts: its userinfo (`user:token@`) replaced by `***@`. */
export function redactUrl(url: string): string {
    return url.replace(userinfo, "$1***@");
}

/** Every URL in `text` with its userinfo replaced by `***@`. */
export function redactUrls(text: string): string {
    return text.replace(/\b([a-z][a-z0-9+.-]*:\/\/)[^\s/?#'"<>]*@/gi, "$1***@");
}

/** Whether the URL carries credentials. */
export function hasUserinfo(url: string): boolean {
    return userinfo.test(url);
}

function decoded(s: string): string {
    try {
        return decodeURIComponent(s);
    } catch {
        return s;
    }
}

/**
 * The texts of a URL's credentials as they could show in a tool's output: the userinfo, the password
 * (as written and decoded), and the user name when it is the token itself (no password). Short parts
 * are left out: a user name like `ci` would blank every "ci" in a message and protects nothing.
 */
export function credentialTexts(url: string): string[] {
    const m = /^[a-z][a-z0-9+.-]*:\/\/([^/?#]*)@/i.exec(url);
    if (!m) return [];
    const info = m[1];
    const colon = info.indexOf(":");
    const parts = colon < 0 ? [info] : [info.slice(colon + 1)];
    return [info, ...parts, ...parts.map(decoded)].filter((p) => p.length >= 4);
}

/**
 * Text from a step on the box (its error, its progress) as it may be shown or stored: every URL's
 * userinfo replaced, and every secret of the step's environment (a token, a key, a URL's credentials)
 * blanked wherever it appears, however the tool printed it.
 */
export function scrub(text: string, secretEnv: Readonly<Record<string, string>> = {}): string {
    const secrets = new Set<string>();
    for (const value of Object.values(secretEnv)) {
        const urls = value.split(/\s+/).filter((v) => /^[a-z][a-z0-9+.-]*:\/\//i.test(v));
        if (urls.length > 0) for (const u of urls) credentialTexts(u).forEach((s) => secrets.add(s));
        else if (value.length >= 8) secrets.add(value);
    }
    let out = redactUrls(text);
    for (const s of [...secrets].sort((a, b) => b.length - a.length)) out = out.split(s).join("***");
    return out;
}
