import test from "ava";
import { credentialTexts, hasUserinfo, redactUrl, redactUrls, scrub } from "../../components/config/urls";

test("redactUrl leaves out a URL's userinfo and nothing else", (t) => {
    t.is(redactUrl("https://user:s3cr3t@pypi.example.internal/simple"), "https://***@pypi.example.internal/simple");
    t.is(redactUrl("https://tok3n@pypi.example.internal/simple"), "https://***@pypi.example.internal/simple");
    t.is(redactUrl("http://u:p@ss@[::1]:8080/x"), "http://***@[::1]:8080/x", "an unencoded @ in the password");
    t.is(redactUrl("https://pypi.org/simple/pkg@1"), "https://pypi.org/simple/pkg@1", "an @ in the path is not userinfo");
    t.is(redactUrl("https://pypi.org/simple?x=a@b"), "https://pypi.org/simple?x=a@b", "nor one in the query");
    t.true(hasUserinfo("https://u:p@h/"));
    t.false(hasUserinfo("https://h/a@b"));
});

test("redactUrls leaves out the userinfo of every URL in a text", (t) => {
    t.is(
        redactUrls("from http://a:b@h1/x and 'https://tok@h2:9/y', then mail me@example.com"),
        "from http://***@h1/x and 'https://***@h2:9/y', then mail me@example.com",
    );
});

test("the credential texts of a URL are its userinfo and its password, decoded too, or the user name when it is the token", (t) => {
    t.deepEqual(credentialTexts("https://ci-user:pa%24%24w0rd@h/"), ["ci-user:pa%24%24w0rd", "pa%24%24w0rd", "pa$$w0rd"]);
    t.deepEqual(credentialTexts("https://tok-123456@h/"), ["tok-123456", "tok-123456", "tok-123456"]);
    t.deepEqual(credentialTexts("https://h/"), []);
    t.deepEqual(credentialTexts("https://u:p@h/"), [], "too short to blank without mangling every message");
});

test("scrub blanks a step environment's secrets and URL credentials however a tool printed them", (t) => {
    const env = { UV_INDEX_URL: "https://ci-user:pa%24%24w0rd@idx/simple", UV_EXTRA_INDEX_URL: "https://x:extra-s3cret@a/ https://b/", HF_TOKEN: "hf_0123456789", HF_ENDPOINT: "https://mirror.example" };
    const text = "GET https://ci-user:pa%24%24w0rd@idx/simple/uv/ 401\npassword pa$$w0rd rejected\ntoken hf_0123456789\nextra-s3cret\nfrom https://mirror.example";
    t.is(scrub(text, env), "GET https://***@idx/simple/uv/ 401\npassword *** rejected\ntoken ***\n***\nfrom https://mirror.example");
});
