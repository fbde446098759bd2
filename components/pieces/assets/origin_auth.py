import base64, urllib.parse, urllib.request

def origin(url):
    u = urllib.parse.urlsplit(url)
    scheme = u.scheme.lower()
    return (scheme, (u.hostname or "").lower(), u.port or {"http": 80, "https": 443}.get(scheme))

def plain(url):
    u = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(u._replace(netloc=u.netloc.rpartition("@")[2]))

def basic_auth(url):
    u = urllib.parse.urlsplit(url)
    if "@" not in u.netloc:
        return None
    user, _, password = u.netloc.rpartition("@")[0].partition(":")
    pair = "%s:%s" % (urllib.parse.unquote(user), urllib.parse.unquote(password))
    return "Basic " + base64.b64encode(pair.encode()).decode()

class OriginAuth(urllib.request.HTTPRedirectHandler):
    """Authorization only for home's origin, on redirects too: dropped when one leads elsewhere."""
    def __init__(self, home):
        self.home, self.auth = origin(home), basic_auth(home)
    def request_for(self, url, headers=None):
        req = urllib.request.Request(plain(url), headers=headers or {})
        if self.auth and origin(url) == self.home:
            req.add_header("Authorization", self.auth)
        return req
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and origin(newurl) != origin(req.full_url):
            new.remove_header("Authorization")
        return new
