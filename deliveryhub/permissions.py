"""
Who may do what: roles map to (area, action) grants, and a `Principal` wraps a user or an API key so
that `restrict()` and the API permission class ask one question in one way.
"""

from dataclasses import dataclass, field

from django.contrib.auth.models import AnonymousUser

from .choices import OTP_REQUIRED_ROLES, Action, ApiKeyScope, Area, Role

ALL_ACTIONS = frozenset(Action.values)
READ = frozenset({Action.VIEW})

# role -> area -> allowed actions; the "*" area applies to every area not named.
# Data-subject requests and retention (Area.PRIVACY) belong to owners and compliance staff only.
ROLE_GRANTS = {
    Role.OWNER: {"*": ALL_ACTIONS},
    Role.ADMIN: {"*": ALL_ACTIONS, Area.PRIVACY: frozenset()},
    Role.MARKETER: {
        "*": READ,
        Area.CAMPAIGNS: ALL_ACTIONS,
        Area.SENDING: frozenset({Action.VIEW, Action.ADD, Action.CHANGE}),
        Area.AUDIT: frozenset(),
        Area.PRIVACY: frozenset(),
    },
    Role.COMPLIANCE: {"*": frozenset({Action.VIEW, Action.EXPORT}), Area.PRIVACY: ALL_ACTIONS},
    Role.VIEWER: {"*": READ, Area.AUDIT: frozenset(), Area.ACCESS: frozenset(), Area.PRIVACY: frozenset()},
}
SCOPE_GRANTS = {
    ApiKeyScope.SEND: {"*": frozenset(), Area.SENDING: frozenset({Action.VIEW, Action.ADD})},
    ApiKeyScope.READ: {"*": READ},
}


def grants_allow(grants, area, action):
    allowed = grants.get(area, grants.get("*", frozenset()))
    return action in allowed


def role_allows(role, area, action):
    """Whether a member with `role` may perform `action` in `area` (platform area: never)."""
    if area == Area.PLATFORM:
        return action == Action.VIEW and role is not None
    return grants_allow(ROLE_GRANTS.get(role, {}), area, action)


@dataclass
class Principal:
    """An acting user or API key: what it is, its roles per tenant, whether it is a platform operator."""

    user: object = None
    api_key: object = None
    roles: dict = field(default_factory=dict)  # tenant_id -> role
    is_platform: bool = False

    is_authenticated = True
    is_anonymous = False

    @classmethod
    def of(cls, actor):
        if isinstance(actor, Principal):
            return actor
        from .models import ApiKey

        if isinstance(actor, ApiKey):  # a key model has no is_authenticated: ask it before the user checks
            return cls.for_key(actor)
        if actor is None or isinstance(actor, AnonymousUser) or not getattr(actor, "is_authenticated", False):
            return ANONYMOUS
        principal = getattr(actor, "_deliveryhub_principal", None)
        if principal is None:
            principal = cls.for_user(actor)
            actor._deliveryhub_principal = principal
        return principal

    @classmethod
    def for_user(cls, user):
        roles = dict(user.memberships.filter(tenant__is_active=True).values_list("tenant_id", "role"))
        return cls(user=user, roles=roles, is_platform=user.is_superuser and user.is_active)

    @classmethod
    def for_key(cls, key):
        roles = {} if key.tenant_id is None else {key.tenant_id: key.role}
        return cls(api_key=key, roles=roles, is_platform=key.is_platform)

    # -- identity -------------------------------------------------------------------------------------------------
    @property
    def is_key(self):
        return self.api_key is not None

    @property
    def name(self):
        if self.api_key is not None:
            return f"API key {self.api_key.name} ({self.api_key.prefix})"
        if self.user is not None:
            return self.user.get_username()
        return "anonymous"

    # -- questions ------------------------------------------------------------------------------------------------
    def allows(self, tenant_id, area, action):
        """Whether this principal may perform `action` in `area` within `tenant_id`."""
        if self.is_platform:
            return not (self.api_key is not None and self.api_key.scope == ApiKeyScope.READ and action != Action.VIEW)
        role = self.roles.get(tenant_id)
        if role is None:
            return False
        if self.api_key is not None and self.api_key.scope != ApiKeyScope.ROLE:
            return grants_allow(SCOPE_GRANTS[self.api_key.scope], area, action) and role_allows(role, area, action)
        return role_allows(role, area, action)

    def tenant_ids_allowing(self, area, action):
        return [tenant_id for tenant_id in self.roles if self.allows(tenant_id, area, action)]

    def can_see_tenant(self, tenant_id):
        return self.is_platform or tenant_id in self.roles

    def needs_otp(self, tenant_id=None):
        """Owners, admins and superusers must have a verified second factor before changing configuration."""
        if self.api_key is not None or self.user is None:
            return False
        if self.user.is_superuser:
            return True
        if tenant_id is None:
            return any(role in OTP_REQUIRED_ROLES for role in self.roles.values())
        return self.roles.get(tenant_id) in OTP_REQUIRED_ROLES


class _Anonymous(Principal):
    is_authenticated = False
    is_anonymous = True

    def allows(self, tenant_id, area, action):
        return False


ANONYMOUS = _Anonymous()
