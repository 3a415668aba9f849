"""The billing portal's pages (billing/portal): where sign-in lands, the Content-Security-Policy.

The policy allows our own origin only: scripts, styles, images, fonts and fetches all come from
our static files (Chart.js is vendored, see billing/static/portal/vendor/README.md), no inline
script or style, no framing; forms post to us (and, signing out, to Keycloak). The Django admin
and the Swagger page are left out (their pages use inline code and, for Swagger, a CDN); every
other response carries the header.
"""

from urllib.parse import urlsplit

from csp.constants import NONE, SELF

from orgbilling.settings.oidc import OIDC_OP_LOGOUT_ENDPOINT


def _origin(url: str) -> list[str]:
    parts = urlsplit(url)
    return [f"{parts.scheme}://{parts.netloc}"] if parts.scheme and parts.netloc else []


CONTENT_SECURITY_POLICY = {
    "EXCLUDE_URL_PREFIXES": ["/admin/", "/api/docs/"],
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        # Signing out posts to /oidc/logout/, which redirects to Keycloak's end-session
        # endpoint: browsers check form-action on that redirect too.
        # Buying credits posts to the portal, which redirects to Stripe Checkout.
        "form-action": [SELF, *_origin(OIDC_OP_LOGOUT_ENDPOINT), "https://checkout.stripe.com"],
        "frame-ancestors": [NONE],
    },
}

# How many days of the signed-in user's own usage the portal's chart covers.
PORTAL_USAGE_DAYS = 30
