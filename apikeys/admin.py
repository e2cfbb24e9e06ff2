from django.contrib import admin, messages
from django.utils import timezone

from .context import invalidate_key_contexts
from .models import APIKey
from .services import api_key_revoke


class InvalidatesKeyContexts:
    """ModelAdmin mixin: any save or delete here changes what the hot path
    enforces for the keys `key_contexts_of` names."""

    def key_contexts_of(self, objects):
        """The API keys whose contexts carry these objects (a queryset of this admin's model)."""
        raise NotImplementedError

    def _invalidate(self, obj):
        invalidate_key_contexts(self.key_contexts_of(type(obj)._default_manager.filter(pk=obj.pk)))

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        self._invalidate(obj)

    def delete_model(self, request, obj):
        self._invalidate(obj)  # listed before the deletion can cascade to the keys
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        invalidate_key_contexts(self.key_contexts_of(queryset))
        super().delete_queryset(request, queryset)


@admin.register(APIKey)
class APIKeyAdmin(InvalidatesKeyContexts, admin.ModelAdmin):
    list_display = ("name", "prefix", "customer", "key_status", "created_at", "last_used_at", "expires_at")
    list_filter = (("revoked_at", admin.EmptyFieldListFilter), "created_at", "customer__tier")
    list_select_related = ("customer__user",)
    search_fields = ("prefix", "name", "customer__user__email")
    raw_id_fields = ("customer",)
    readonly_fields = ("prefix", "hashed_key", "created_at", "last_used_at", "revoked_at", "rotated_at")
    fields = (
        "customer",
        "name",
        "prefix",
        "scopes",
        "expires_at",
        "created_at",
        "last_used_at",
        "revoked_at",
        "rotated_at",
    )
    actions = ("revoke_selected",)

    def key_contexts_of(self, objects):
        return objects

    def has_add_permission(self, request):
        # A raw key exists only at creation and must be shown to its owner once:
        # keys are made by the customer (or create_api_key), not typed in here.
        return False

    def has_delete_permission(self, request, obj=None):
        # Keys are revoked (the action above), never deleted: billed usage,
        # flushed or still in Redis, belongs to its key.
        return False

    @admin.display(description="status")
    def key_status(self, api_key):
        return api_key.status(timezone.now()).label

    # Revoking changes the key: the view permission alone must not offer it.
    @admin.action(description="Revoke selected API keys", permissions=["change"])
    def revoke_selected(self, request, queryset):
        revoked = sum(api_key_revoke(api_key=api_key) for api_key in queryset)
        self.message_user(request, f"Revoked {revoked} key(s).", messages.SUCCESS)
