"""
Verbs of the core: creating tenants, members and API keys, revoking keys, authenticating a key.

Every verb is atomic, takes the actor as keyword-only `acting_user` and runs inside `audit.acting_as(acting_user)`
(see deliveryhub/audit.py), so its audit entries, written in the same transaction, name that actor.
Views, serializers, admin actions and commands all call these; none re-implement them.
"""

import hmac
import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from . import audit
from .choices import ApiKeyScope, Role
from .constants import (
    API_KEY_LAST_USED_EVERY,
    API_KEY_LOOKUP_LENGTH,
    API_KEY_PREFIX_LIVE,
    API_KEY_PREFIX_PLATFORM,
    API_KEY_PREFIX_READONLY,
)
from .crypto import digest
from .models import ApiKey, Membership, Tenant
from .permissions import Principal
from .querysets import rows_where


@transaction.atomic
def create_tenant(slug, name, *, acting_user=None, time_zone="UTC"):
    """Create a tenant (platform operators only at the edges; this verb trusts its caller)."""
    with audit.acting_as(acting_user):
        tenant = Tenant(slug=slug, name=name, time_zone=time_zone)
        tenant.full_clean()
        tenant.save()
        return tenant


@transaction.atomic
def create_user(email, *, tenant=None, role=Role.VIEWER, password=None, acting_user=None, is_superuser=False):
    """Create a user (username = email) and, with a tenant, their membership."""
    with audit.acting_as(acting_user):
        User = get_user_model()
        if User.objects.filter(username__iexact=email).exists():
            raise ValidationError({"email": f"A user {email} already exists."})
        user = User(username=email, email=email, is_superuser=is_superuser, is_staff=is_superuser)
        if password:
            validate_password(password, user)
            user.set_password(password)
        else:
            user.set_unusable_password()
        user.full_clean()
        user.save()  # audited as user.create by the signal every user save goes through (deliveryhub.audit)
        if tenant is not None:
            add_member(tenant, user, role, acting_user=acting_user)
        return user


@transaction.atomic
def add_member(tenant, user, role, *, acting_user=None):
    """Give `user` the `role` in `tenant` (a member already there gets the new role)."""
    with audit.acting_as(acting_user):
        if role not in Role.values:
            raise ValidationError({"role": f"Unknown role {role!r}."})
        membership, created = Membership.objects.get_or_create(tenant=tenant, user=user, defaults={"role": role})
        if not created and membership.role != role:
            membership.role = role
            membership.save()
        return membership


def _new_raw_key(prefix):
    return prefix + secrets.token_urlsafe(32).replace("-", "x").replace("_", "y")


@transaction.atomic
def create_api_key(
    *, tenant, name, role=Role.ADMIN, scope=ApiKeyScope.ROLE, expires=None, allowed_networks=(), acting_user=None
):
    """Create an API key and return (key, raw). The raw key is shown once and never stored.

    `tenant=None` makes a platform (operator) key.
    """
    with audit.acting_as(acting_user):
        if tenant is None:
            prefix, scope, role = API_KEY_PREFIX_PLATFORM, ApiKeyScope.ROLE, Role.OWNER
        elif scope == ApiKeyScope.READ or (scope == ApiKeyScope.ROLE and role == Role.VIEWER):
            prefix = API_KEY_PREFIX_READONLY
        else:
            prefix = API_KEY_PREFIX_LIVE
        if role not in Role.values:
            raise ValidationError({"role": f"Unknown role {role!r}."})
        if scope not in ApiKeyScope.values:
            raise ValidationError({"scope": f"Unknown scope {scope!r}."})
        raw = _new_raw_key(prefix)
        key = ApiKey(
            tenant=tenant,
            name=name,
            prefix=raw[: len(prefix) + API_KEY_LOOKUP_LENGTH],
            digest=digest(raw),
            role=role,
            scope=scope,
            expires=expires,
            allowed_networks=list(allowed_networks or []),
            created_by=Principal.of(acting_user).user if acting_user is not None else None,
        )
        key.full_clean(exclude=["digest", "prefix"])
        key.save()
        audit.record("apikey.create", obj=key, postchange={"role": role, "scope": scope, "prefix": key.prefix})
        return key, raw


@transaction.atomic
def revoke_api_key(key, *, acting_user=None):
    """Revoke a key (from now on it authenticates nothing); revoking a revoked key changes nothing."""
    with audit.acting_as(acting_user):
        if key.revoked is None:
            key.revoked = timezone.now()
            key.save()
            audit.record("apikey.revoke", obj=key)
        return key


def authenticate_api_key(raw, client_ip=None):
    """The usable key matching `raw`, or None. Compares digests in constant time; marks `last_used`."""
    if not raw or len(raw) < 16:
        return None
    for prefix in (API_KEY_PREFIX_LIVE, API_KEY_PREFIX_READONLY, API_KEY_PREFIX_PLATFORM):
        if raw.startswith(prefix):
            lookup = raw[: len(prefix) + API_KEY_LOOKUP_LENGTH]
            break
    else:
        return None
    wanted = digest(raw)
    now = timezone.now()
    for key in rows_where(ApiKey, prefix=lookup):
        if not hmac.compare_digest(key.digest, wanted):
            continue
        key.tenant = next(iter(rows_where(Tenant, id=key.tenant_id)), None) if key.tenant_id else None
        if not key.is_usable(now) or (key.tenant_id and not key.tenant.is_active):
            return None
        if not key.allows_address(client_ip):  # a key limited to networks needs a known client address
            return None
        # last_used is not audited (excluded field) and written without touching other columns, at most once a
        # minute per key and address: a write (a commit) on every request was a fifth of a single-message POST.
        fresh = key.last_used is not None and (now - key.last_used).total_seconds() < API_KEY_LAST_USED_EVERY
        if not fresh or key.last_used_ip != client_ip:
            ApiKey.objects.filter(pk=key.pk).update(last_used=now, last_used_ip=client_ip)
        return key
    return None


# ---------------------------------------------------------------------------------------------------------------------
# Member management: role changes and removals keep at least one owner, and only owners touch the owner role.
# ---------------------------------------------------------------------------------------------------------------------


def _check_owner_rights(tenant, acting_user, *roles):
    """Only an owner (or a platform operator, or the system) may grant, revoke or remove the owner role."""
    if Role.OWNER not in roles or acting_user is None:
        return
    principal = Principal.of(acting_user)
    if not principal.is_platform and principal.roles.get(tenant.pk) != Role.OWNER:
        raise ValidationError({"role": "Only an owner can grant or revoke the owner role."})


def _check_not_last_owner(membership, action):
    """Refuse to leave a tenant without an owner. Locks the owners' rows so two demotions cannot race."""
    if membership.role != Role.OWNER:
        return
    owners = Membership.objects.select_for_update().filter(tenant_id=membership.tenant_id, role=Role.OWNER)
    if len(owners.values_list("pk", flat=True)) <= 1:
        message = f"{membership.user} is the last owner of {membership.tenant}: make another member owner first."
        raise ValidationError({"role": f"Cannot {action} the last owner. {message}"})


@transaction.atomic
def add_member_by_email(tenant, email, role, *, password=None, acting_user=None):
    """Add the user with this email (created, with `password` if given, when unknown) to `tenant` with `role`."""
    with audit.acting_as(acting_user):
        if role not in Role.values:
            raise ValidationError({"role": f"Unknown role {role!r}."})
        _check_owner_rights(tenant, acting_user, role)
        email = email.strip().lower()
        User = get_user_model()
        user = User.objects.filter(username__iexact=email).first()
        if user is None:
            user = create_user(email, password=password, acting_user=acting_user)
        elif Membership.objects.filter(user=user, tenant=tenant).exists():
            raise ValidationError({"email": f"{email} is already a member of {tenant}."})
        return add_member(tenant, user, role, acting_user=acting_user)


@transaction.atomic
def change_role(membership, role, *, acting_user=None):
    """Give a member another role. Only owners grant or revoke the owner role; the last owner stays owner."""
    with audit.acting_as(acting_user):
        if role not in Role.values:
            raise ValidationError({"role": f"Unknown role {role!r}."})
        if membership.role == role:
            return membership
        _check_owner_rights(membership.tenant, acting_user, membership.role, role)
        _check_not_last_owner(membership, "demote")
        membership.role = role
        membership.save()
        return membership


@transaction.atomic
def remove_member(membership, *, acting_user=None):
    """Remove a member from their tenant (the user account stays). The last owner cannot be removed."""
    with audit.acting_as(acting_user):
        _check_owner_rights(membership.tenant, acting_user, membership.role)
        _check_not_last_owner(membership, "remove")
        membership.delete()
