"""What the API and the workers agree on about webhooks (docs/api.md
"Webhooks"): the secret's form, which URLs may be named, and which
addresses a delivery may reach. Pure."""

from __future__ import annotations

import base64
import ipaddress
import secrets
from datetime import timedelta
from urllib.parse import urlsplit

# Standard Webhooks' form (standardwebhooks.com): `whsec_` and the key's
# bytes in base64, so its libraries verify our signatures as they are.
SECRET_PREFIX = "whsec_"
MAX_URL = 2048
ROTATION_OVERLAP = timedelta(days=1)  # a replaced secret signs beside the new one
# A delivery is tried for this long after its status change, then given up
# (the workers' waits; a webhook enabled again gives up those held longer).
GIVE_UP_AFTER = timedelta(days=1)


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def secret_key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


# IPv6's global unicast, less the ranges that carry an IPv4 address a
# gateway may take it to (6to4, Teredo): NAT64's 64:ff9b::/96 and the
# IPv4-compatible and -translated forms are outside 2000::/3 already.
_GLOBAL_UNICAST_V6 = ipaddress.ip_network("2000::/3")
_CARRYING_V4 = (ipaddress.ip_network("2002::/16"), ipaddress.ip_network("2001::/32"))


def address_allowed(address: str, allow_insecure: bool) -> bool:
    """A delivery reaches public addresses only, unless the operator allows
    any (a local install, tests): a webhook's URL is an org admin's input,
    and the workers sit beside the database, the cluster's API and the
    cloud's metadata service (SSRF)."""
    if allow_insecure:
        return True
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])  # a scoped IPv6 address
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped.is_global and not ip.ipv4_mapped.is_multicast
        if ip not in _GLOBAL_UNICAST_V6 or any(ip in net for net in _CARRYING_V4):
            return False
    return ip.is_global and not ip.is_multicast


def url_problem(url: str, allow_insecure: bool) -> str | None:
    """Why `url` cannot be a webhook's, or None: https (http too when the
    operator allows insecure webhooks), a host, no credentials in it, and,
    when its host is an address, a public one (a name is checked as it is
    resolved, at each delivery)."""
    if len(url) > MAX_URL:
        return f"is longer than {MAX_URL} characters"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "is not a URL"
    schemes = ("https", "http") if allow_insecure else ("https",)
    if parts.scheme not in schemes:
        return "must be an https URL" if not allow_insecure else "must be an http(s) URL"
    host = parts.hostname
    if not host:
        return "has no host"
    try:
        host.encode("idna")  # as the client will, or it raises at each delivery
    except UnicodeError:
        return "has a host name that is not valid"
    if parts.username is not None or parts.password is not None:
        return "may not hold credentials (the signature says who sent it)"
    if parts.fragment:
        return "may not have a fragment"
    if port == 0:
        return "has port 0"
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return None  # a name
    if not address_allowed(host, allow_insecure):
        return "names an address that is not public"
    return None
