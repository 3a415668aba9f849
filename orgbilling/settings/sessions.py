"""Browser sessions and password sign-in: re-checking SSO sessions against Keycloak, the cap on
staff sessions, and the throttle on password sign-in (django-axes). Star-imported by base.py.
How to configure: README, "Sessions and sign-in throttling"; the choices: docs/decisions.md.
"""

from datetime import timedelta

from orgbilling.settings.env import env

# --- SSO sessions (organizations/auth/sessions.py) ------------------------------------------------
# A browser session opened through Keycloak is re-checked this often: its refresh token is
# redeemed at the token endpoint and the user's roles (is_staff) re-synced from the fresh claims.
# Refused (user disabled, session revoked in Keycloak): the session ends at that request. 0 = never.
OIDC_SESSION_RECHECK_SECONDS: int = env.int("OIDC_SESSION_RECHECK_SECONDS", default=300)
# Keycloak unreachable (or answering 5xx): the session keeps working for this long after its last
# successful check plus the interval, then ends (fail closed). Retried at most every
# OIDC_SESSION_RECHECK_RETRY_SECONDS meanwhile, so an outage does not slow every request.
OIDC_SESSION_RECHECK_GRACE_SECONDS: int = env.int("OIDC_SESSION_RECHECK_GRACE_SECONDS", default=600)
OIDC_SESSION_RECHECK_RETRY_SECONDS: int = env.int("OIDC_SESSION_RECHECK_RETRY_SECONDS", default=30)

# A staff user's session (SSO or password) ends this long after sign-in, however active.
STAFF_SESSION_MAX_SECONDS: int = env.int("STAFF_SESSION_MAX_SECONDS", default=8 * 3600)

# --- Password sign-in throttle (django-axes; /admin/login/, /api-auth/login/) -------------------------
# After LOGIN_FAILURE_LIMIT failures for one username, or from one client address, further
# attempts for it are refused (429, the lockout page) for LOGIN_LOCKOUT_MINUTES.
AXES_ENABLED: bool = env.bool("LOGIN_THROTTLE_ENABLED", default=True)
AXES_FAILURE_LIMIT: int = env.int("LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("LOGIN_LOCKOUT_MINUTES", default=15))
# Per user and, separately, per address (each list item is its own counter).
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
# Only password attempts count; SSO sign-ins are Keycloak's to throttle.
AXES_WHITELIST_CALLABLE = "organizations.auth.throttling.is_not_a_password_attempt"
# Attempts refused during a lockout neither count nor extend it: it ends when announced.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
# The address is REMOTE_ADDR: uvicorn has already replaced it with X-Forwarded-For's client when
# the peer is a trusted proxy (FORWARDED_ALLOW_IPS); a header sent by the client is never read.
AXES_CLIENT_IP_CALLABLE = "organizations.auth.oidc.client_ip"
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"
# Every failure is kept (AccessFailureLog, admin "Access failures"), besides the counters.
AXES_ENABLE_ACCESS_FAILURE_LOG = True
AXES_HTTP_RESPONSE_CODE = 429
AXES_LOCKOUT_CALLABLE = "organizations.auth.throttling.lockout_response"
AXES_LOCKOUT_TEMPLATE = "auth/lockout.html"
