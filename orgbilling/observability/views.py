"""``/readyz`` (readiness) and ``/metrics`` (Prometheus). ``/healthz`` (liveness) stays in
``orgbilling.views``."""

import hmac
import ipaddress

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from orgbilling.api.exceptions import error_body
from orgbilling.observability.metrics import render_metrics
from orgbilling.observability.readiness import run_readiness_checks


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    """200 when every check passes, else 503; each check named with its status."""
    results = run_readiness_checks()
    ready = all(result.ok for result in results.values())
    return JsonResponse(
        {
            "status": "ok" if ready else "unavailable",
            "checks": {name: result.as_dict() for name, result in results.items()},
        },
        status=200 if ready else 503,
    )


def _client_allowed(request: HttpRequest, networks: list[str]) -> bool:
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in ipaddress.ip_network(network) for network in networks)


def _bearer_token(request: HttpRequest) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _metrics_refusal(request: HttpRequest) -> HttpResponse | None:
    """Every configured restriction must pass; with none configured /metrics does not exist."""
    token: str = settings.METRICS_TOKEN
    networks: list[str] = settings.METRICS_ALLOWED_NETWORKS
    if not token and not networks:
        raise Http404()
    if networks and not _client_allowed(request, networks):
        return JsonResponse(error_body("forbidden", "Metrics are not served to this address."), status=403)
    if token:
        given = _bearer_token(request)
        if given is None:
            response = JsonResponse(
                error_body("unauthenticated", "Send the metrics token as a Bearer token."), status=401
            )
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
        if not hmac.compare_digest(given.encode(), token.encode()):
            return JsonResponse(error_body("forbidden", "The metrics token is not valid."), status=403)
    return None


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    refusal = _metrics_refusal(request)
    if refusal is not None:
        return refusal
    body, content_type = render_metrics()
    return HttpResponse(body, content_type=content_type)
