"""Admin for users, organizations and memberships. An organization's page shows its pool
balances (in credits), its members (role and status editable) and — added by the billing app
(``billing.admin.organizations``) — its allocations (read-only) and the credit actions, which
call the services. Membership changes and (de)activating an organization go through the
services too (last-admin guard, audit events)."""

from typing import Any, ClassVar

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db.models import Count, F, Q, QuerySet
from django.http import HttpRequest
from django.utils.text import slugify

from organizations.models import ApiKey, Organization, OrganizationMember, User
from organizations.services import (
    add_member,
    create_organization,
    revoke_api_key,
    set_organization_active,
    update_member,
    update_organization,
)
from orgbilling.admin import ReadOnlyAdmin, credits_display
from orgbilling.errors import ApplicationError


def _actor(request: HttpRequest) -> User | None:
    return request.user if isinstance(request.user, User) else None


def _save_membership_change(request: HttpRequest, form: forms.ModelForm) -> str | None:
    """Apply an edited membership's role and status through ``update_member`` (last-admin
    guard, audit events); the refusal's message, or None."""
    changed = [name for name in ("role", "status") if name in form.changed_data]
    if not changed:
        return None
    member: OrganizationMember = form.instance
    try:
        update_member(
            org_id=member.org_id,
            user=member.user,
            role=form.cleaned_data["role"] if "role" in changed else None,
            status=form.cleaned_data["status"] if "status" in changed else None,
            actor=_actor(request),
            actor_label="admin",
        )
    except ApplicationError as refusal:
        return f"{member.user} in {member.org_id}: {refusal.message} ({refusal.code})"
    return None


class MembershipForm(forms.ModelForm):
    """Edits a membership. A user has at most one default organization; say so plainly instead
    of failing on the database constraint (the form cannot check it when ``user`` is read-only)."""

    class Meta:
        model = OrganizationMember
        fields = ("org", "user", "role", "status", "is_default")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        invited = OrganizationMember.Status.INVITED
        if "status" in self.changed_data and invited in (cleaned.get("status"), self.initial.get("status")):
            self.add_error("status", "An invitation is accepted or declined by its invitee, not here.")
        user = cleaned.get("user")
        user_id = user.pk if user is not None else self.instance.user_id
        if cleaned.get("is_default") and user_id is not None:
            other = (
                OrganizationMember.objects.filter(user_id=user_id, is_default=True)
                .exclude(pk=self.instance.pk)
                .select_related("org")
                .first()
            )
            if other is not None:
                self.add_error(
                    "is_default",
                    f"{other.org} is already this user's default organization; unset it there first.",
                )
        return cleaned


class UserMembershipInline(admin.TabularInline):
    """A user's organizations, read-only here (edit them on the organization)."""

    model = OrganizationMember
    fk_name = "user"
    fields = ("org", "role", "status", "is_default", "joined_at")
    readonly_fields = fields
    extra = 0
    show_change_link = True
    verbose_name_plural = "Organization memberships"

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).select_related("org")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    list_display = ("username", "email", "first_name", "last_name", "is_staff", "is_active", "date_joined")
    inlines = (UserMembershipInline,)

    def get_inlines(
        self, request: HttpRequest, obj: Any = None
    ) -> list[type[admin.options.InlineModelAdmin]]:
        return [] if obj is None else list(self.inlines)


class MemberInline(admin.TabularInline):
    """Members of an organization: role and status are editable (saved through
    ``update_member``); the default flag is the user's own choice. New members are added on the
    Organization members page (through the ``add_member`` service); members are suspended,
    never deleted, so their allocations and ledger rows keep an owner."""

    model = OrganizationMember
    form = MembershipForm
    fk_name = "org"
    fields = ("user", "role", "status", "is_default", "joined_at")
    readonly_fields = ("user", "is_default", "joined_at")
    extra = 0
    show_change_link = True

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).select_related("user")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class OrganizationAddForm(forms.ModelForm):
    """Creating an organization goes through ``create_organization`` (pool, first admin, audit)."""

    class Meta:
        model = Organization
        fields = ("id", "org_name", "slug", "billing_email", "created_by")
        help_texts = {
            "slug": "Defaults to the id.",
            "created_by": "Becomes the organization's first admin member.",
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["slug"].required = False

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if not cleaned.get("slug") and cleaned.get("id"):
            # The service's own default, made here so the form can report a taken slug.
            cleaned["slug"] = slugify(cleaned["id"])[:64] or cleaned["id"].lower()
        return cleaned


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    """Organizations with their pool balances. The billing app adds the credit actions and the
    allocations inline (``billing.admin.organizations``): this layer never imports billing."""

    pool_total = credits_display("credit_pool.total_credits", "Total (credits)")
    pool_allocated = credits_display("credit_pool.allocated_credits", "Allocated (credits)")
    pool_used = credits_display("credit_pool.used_credits", "Used (credits)")
    pool_available = credits_display(
        "credit_pool.available_credits",
        "Available (credits)",
        ordering=F("credit_pool__total_credits") - F("credit_pool__allocated_credits"),
    )
    pool_fields = ("pool_total", "pool_allocated", "pool_used", "pool_available")

    list_display = ("id", "org_name", "is_active", "active_members", *pool_fields, "created_at")
    list_filter = ("is_active", "created_at")
    search_fields = ("id", "org_name", "slug", "billing_email")
    autocomplete_fields = ("created_by",)
    inlines: ClassVar[tuple[type[admin.options.InlineModelAdmin], ...]] = (MemberInline,)
    readonly_fields = (
        "id",
        "slug",
        "created_by",
        "lago_customer_id",
        "stripe_customer_id",
        "byok_enabled",  # set by the org's admins through the API (audited), not here
        *pool_fields,
        "created_at",
        "updated_at",
    )
    fieldsets = (
        (None, {"fields": ("id", "org_name", "slug", "billing_email", "is_active")}),
        ("Credit pool", {"fields": pool_fields}),
        ("External billing", {"fields": ("lago_customer_id", "stripe_customer_id")}),
        ("LLM gateway", {"fields": ("byok_enabled",)}),
        ("History", {"fields": ("created_by", "created_at", "updated_at")}),
    )
    add_fieldsets = ((None, {"fields": ("id", "org_name", "slug", "billing_email", "created_by")}),)

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return (
            super()
            .get_queryset(request)
            .select_related("credit_pool")
            .annotate(
                active_member_count=Count(
                    "members", filter=Q(members__status=OrganizationMember.Status.ACTIVE)
                )
            )
        )

    @admin.display(description="Active members", ordering="active_member_count")
    def active_members(self, org: Organization) -> int:
        return int(getattr(org, "active_member_count", 0))

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        return self.add_fieldsets if obj is None else self.fieldsets

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return () if obj is None else self.readonly_fields

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        if obj is None:
            kwargs["form"] = OrganizationAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_inlines(
        self, request: HttpRequest, obj: Any = None
    ) -> list[type[admin.options.InlineModelAdmin]]:
        return [] if obj is None else list(self.inlines)

    def save_model(self, request: HttpRequest, obj: Organization, form: Any, change: bool) -> None:
        if change:
            changed = form.changed_data
            update_organization(
                org_id=obj.id,
                org_name=obj.org_name if "org_name" in changed else None,
                billing_email=obj.billing_email if "billing_email" in changed else None,
            )
            if "is_active" in changed:
                set_organization_active(
                    org_id=obj.id, is_active=obj.is_active, actor=_actor(request), actor_label="admin"
                )
            return
        create_organization(
            org_id=obj.id,
            org_name=obj.org_name,
            slug=obj.slug,
            billing_email=obj.billing_email,
            created_by=obj.created_by,
            actor_label=f"admin:{request.user.get_username()}",
        )
        obj.refresh_from_db()
        obj._state.adding = False

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        if formset.model is not OrganizationMember:
            super().save_formset(request, form, formset, change)
            return
        # What the admin's change message (history) reads from a saved formset.
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        for member_form in formset.forms:
            refusal = _save_membership_change(request, member_form)
            if refusal is not None:
                self.message_user(request, refusal, level=messages.ERROR)
            elif member_form.has_changed():
                formset.changed_objects.append((member_form.instance, member_form.changed_data))

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Deactivate instead: the pool and the ledger rows protect the organization.
        return False


@admin.register(OrganizationMember)
class OrganizationMemberAdmin(admin.ModelAdmin):
    form = MembershipForm
    list_display = ("id", "org", "user", "role", "status", "is_default", "joined_at")
    list_filter = ("role", "status", "is_default")
    list_select_related = ("org", "user")
    search_fields = ("=org__id", "org__org_name", "user__username", "user__email")
    autocomplete_fields = ("org", "user")

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return ("org", "user", "role", "is_default")
        return ("org", "user", "role", "status", "is_default", "joined_at")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # A membership never moves to another user or organization: its allocations follow it.
        # The default organization is the user's own choice (PUT /api/v1/me/default-org).
        return () if obj is None else ("org", "user", "is_default", "joined_at")

    def save_model(self, request: HttpRequest, obj: OrganizationMember, form: Any, change: bool) -> None:
        if change:
            refusal = _save_membership_change(request, form)
            if refusal is not None:
                self.message_user(request, refusal, level=messages.ERROR)
            return
        member = add_member(
            org_id=obj.org_id,
            user=obj.user,
            role=obj.role,
            is_default=obj.is_default,
            actor=_actor(request),
            actor_label="admin",
        )
        obj.pk = member.pk
        obj.refresh_from_db()
        obj._state.adding = False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Suspend instead: a deleted membership would leave its allocation without a member.
        return False


@admin.action(description="Revoke selected keys", permissions=["revoke"])
def revoke_keys(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet) -> None:
    actor = request.user if isinstance(request.user, User) else None
    revoked = 0
    for key_id in queryset.filter(revoked_at__isnull=True).values_list("pk", flat=True):
        revoke_api_key(key_id=key_id, actor=actor, actor_label="admin")
        revoked += 1
    modeladmin.message_user(request, f"Revoked {revoked} API key(s).")


@admin.register(ApiKey)
class ApiKeyAdmin(ReadOnlyAdmin):
    """Keys are read-only here (people create them through the API, where the key is shown
    once); ops can revoke them. The stored hash is never displayed."""

    list_display = (
        "name",
        "prefix",
        "user",
        "org",
        "scopes",
        "created_at",
        "last_used_at",
        "expires_at",
        "revoked_at",
    )
    list_filter = (("revoked_at", admin.EmptyFieldListFilter), "created_at", "expires_at")
    list_select_related = ("user", "org")
    search_fields = ("=prefix", "name", "user__username", "user__email", "=org__id")
    fields = list_display
    readonly_fields = list_display
    actions = (revoke_keys,)

    # Read-only (ReadOnlyAdmin): revoke instead of deleting; the row and its audit events
    # explain what the key did.

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("organizations.change_apikey"))
