"""Admitting a gateway call, the HTTP side (run through ``billing.gateway.db.run_db``):
authenticate the caller, read who they ask to pay for the call, parse and price the request's
worst case, then hold it (``billing.services.gateway_calls.holds.hold_call``: payer, plan quota,
hold) before anything goes upstream.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from django.conf import settings
from django.http import HttpRequest
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed, NotAuthenticated, PermissionDenied
from rest_framework.parsers import BaseParser
from rest_framework.request import Request
from rest_framework.settings import api_settings

from billing.errors import OrganizationNotFound, UnsupportedParameter
from billing.gateway.metering import (
    ChatRequest,
    ImageRequest,
    chat_request,
    image_request,
    is_reasoning_model,
    parse_json_object,
)
from billing.ledger.charges import MAX_TOKENS
from billing.ledger.holds import GenerationMoved
from billing.models import ServiceType
from billing.money import MAX_MILLICREDITS
from billing.pricing import PriceSnapshot
from billing.services.gateway_calls import cache as gateway_cache
from billing.services.gateway_calls.cache import CacheView
from billing.services.gateway_calls.config import setting
from billing.services.gateway_calls.holds import Admission, hold_call
from organizations.auth.api_key_auth import (
    ApiKeyAuthentication,
    ApiKeyScopePermission,
    presented_key,
    request_api_key,
)
from organizations.models import ApiKey, User
from orgbilling.observability.request_id import request_id_of

T = TypeVar("T")

ORG_HEADER = "X-Org-Id"
# Admissions under a cache generation that moves under each of them before reading everything.
ADMISSION_TRIES = 3
PROVIDER_KEY_HEADER = "X-Provider-Key"


@dataclass(frozen=True)
class Caller:
    user: User
    api_key: ApiKey | None


def authenticate(request: HttpRequest, *, scope: str, cached: CacheView | None = None) -> Caller:
    """The REST API's authenticators (API key, Keycloak bearer, session with CSRF), and the
    API key's scope: ``write`` to spend credits, ``read`` to list models. With ``cached``, an
    API key (the first authenticator, so the same answer) is looked up through the cache."""
    if cached is not None:
        raw_key = presented_key(request)
        if raw_key is not None:
            return _key_caller(cached, raw_key, scope=scope)
    classes = cast(list[type[BaseAuthentication]], api_settings.DEFAULT_AUTHENTICATION_CLASSES)
    # Parsers too: the session's CSRF check reads request.POST.
    parsers = cast(list[type[BaseParser]], api_settings.DEFAULT_PARSER_CLASSES)
    authenticators = [auth() for auth in classes]
    drf_request = Request(request, authenticators=authenticators, parsers=[parser() for parser in parsers])
    try:
        user = drf_request.user  # raises AuthenticationFailed / PermissionDenied (CSRF)
        if user is None or not user.is_authenticated:
            raise NotAuthenticated()
    except (NotAuthenticated, AuthenticationFailed) as refusal:
        # As DRF's views do: a 401 names the scheme to use (WWW-Authenticate).
        refusal.auth_header = authenticators[0].authenticate_header(drf_request)  # type: ignore[union-attr]
        raise
    key = request_api_key(drf_request)
    if key is not None and scope not in key.scopes:
        raise PermissionDenied(ApiKeyScopePermission.message)
    assert isinstance(user, User)
    return Caller(user=user, api_key=key)


def _key_caller(cached: CacheView, raw_key: str, *, scope: str) -> Caller:
    """What ``ApiKeyAuthentication`` and the scope check answer, from the cache."""
    key = gateway_cache.api_key(cached, raw_key)
    if key is None:
        refusal = AuthenticationFailed("The API key is invalid, expired or revoked.")
        refusal.auth_header = f'Bearer realm="{ApiKeyAuthentication.www_authenticate_realm}"'  # type: ignore[attr-defined]
        raise refusal
    if scope not in key.scopes:
        raise PermissionDenied(ApiKeyScopePermission.message)
    user = key.user
    user.api_key_scope_org_id = key.org_id  # type: ignore[attr-defined]
    return Caller(user=user, api_key=key)


def requested_org(request: HttpRequest, caller: Caller) -> str | None:
    """``X-Org-Id``, else the org an org-scoped API key is bound to. A key bound to one org
    naming another answers 404, as everywhere else in the API."""
    header = (request.headers.get(ORG_HEADER) or "").strip() or None
    key_org = caller.api_key.org_id if caller.api_key is not None else None
    if key_org is not None and header is not None and header != key_org:
        raise OrganizationNotFound(details={"org_id": header})
    return header or key_org


def _output_cap(price: PriceSnapshot) -> int:
    cap: int = price.max_output_tokens or setting("LLM_DEFAULT_MAX_OUTPUT_TOKENS")
    return cap


def local_cache() -> bool:
    """The plan quota's counters are in this process (``LocMemCache``), not behind a network."""
    return bool(settings.CACHES["default"]["BACKEND"] == "django.core.cache.backends.locmem.LocMemCache")


def _with_current_cache(admit: Callable[[CacheView], T]) -> T:
    """Run ``admit`` under the process's last cache generation; again with fresh reads when the
    hold found it moved, or when ``admit`` refused the call and the generation has moved since
    (a refusal must not come from an out-of-date entry). Past ``ADMISSION_TRIES`` (the cache
    changing under every try) it reads everything from the database. With the quota's counters
    in Redis the generation is read first (one more round trip): a try the hold turns back
    would count the quota, and wait on Redis, twice."""
    cached = gateway_cache.view(verified=not local_cache())
    for _ in range(ADMISSION_TRIES):
        try:
            return admit(cached)
        except GenerationMoved as moved:
            cached = gateway_cache.moved_to(moved.generation)
        except Exception:
            fresh = gateway_cache.still_current(cached)
            if fresh is None:
                raise
            cached = fresh
    return admit(CacheView(None))


def admit_chat(request: HttpRequest, *, byok: bool) -> tuple[Admission, ChatRequest, dict[str, Any]]:
    """Authenticate, price the worst case of a chat completion and hold it. Returns the
    admission, the parsed request and the body to send upstream."""
    raw_body = request.body  # before the authenticators: a session's CSRF check reads the stream
    return _with_current_cache(lambda cached: _admit_chat(request, raw_body, cached, byok=byok))


def _admit_chat(
    request: HttpRequest, raw_body: bytes, cached: CacheView, *, byok: bool
) -> tuple[Admission, ChatRequest, dict[str, Any]]:
    call, chat, body = chat_call(request, raw_body, cached, byok=byok)
    return hold_call(cached=cached, **call), chat, body


def chat_call(
    request: HttpRequest, raw_body: bytes, cached: CacheView, *, byok: bool
) -> tuple[dict[str, Any], ChatRequest, dict[str, Any]]:
    """Authenticate and price the worst case of a chat completion: the arguments of
    ``plan_hold``, the parsed request and the body to send upstream."""
    caller = authenticate(request, scope=ApiKey.Scope.WRITE, cached=cached)
    chat = chat_request(parse_json_object(raw_body))
    price = gateway_cache.price(cached, chat.model)
    if chat.audio_input and price.audio_input_credits_per_million is None:
        # Audio costs many times text: charged at the text price it would be given away.
        raise UnsupportedParameter(
            "Audio input is not priced for this model.",
            details={"parameters": ["input_audio"], "model": chat.model},
        )
    output_cap = _output_cap(price) if chat.max_output_tokens is None else None
    output = chat.max_output_tokens if chat.max_output_tokens is not None else _output_cap(price)
    output_bound = min(MAX_TOKENS, output * chat.choices)
    worst_case = min(
        MAX_MILLICREDITS,
        price.worst_case_cost(input_tokens=chat.estimated_input_tokens, output_tokens=output * chat.choices),
    )
    call = {
        "user": caller.user,
        "api_key": caller.api_key,
        "requested_org_id": requested_org(request, caller),
        "request_id": request_id_of(request),  # the call's one id: response, logs, audit, ledger rows
        "model": chat.model,
        "price": price,
        "worst_case": worst_case,
        "byok": byok,
        "service_type": ServiceType.LLM,
        "estimated_input_tokens": chat.estimated_input_tokens,
        "output_bound": output_bound,
        "reasoning_model": chat.reasoning or is_reasoning_model(chat.model, setting("LLM_REASONING_MODELS")),
    }
    return call, chat, chat.upstream_body(output_cap=output_cap)


def admit_image(request: HttpRequest, *, byok: bool) -> tuple[Admission, ImageRequest]:
    raw_body = request.body  # before the authenticators: a session's CSRF check reads the stream
    return _with_current_cache(lambda cached: _admit_image(request, raw_body, cached, byok=byok))


def _admit_image(
    request: HttpRequest, raw_body: bytes, cached: CacheView, *, byok: bool
) -> tuple[Admission, ImageRequest]:
    caller = authenticate(request, scope=ApiKey.Scope.WRITE, cached=cached)
    image = image_request(parse_json_object(raw_body))
    price = gateway_cache.price(cached, image.model, size=image.size, quality=image.quality)
    worst_case = min(MAX_MILLICREDITS, price.image_cost(count=image.count))
    admission = hold_call(
        user=caller.user,
        api_key=caller.api_key,
        requested_org_id=requested_org(request, caller),
        request_id=request_id_of(request),
        model=image.model,
        price=price,
        worst_case=worst_case,
        byok=byok,
        service_type=ServiceType.IMAGE,
        cached=cached,
    )
    return admission, image
