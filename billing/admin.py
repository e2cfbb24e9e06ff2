from django.contrib import admin, messages
from django.db.models import Count

from apikeys.admin import InvalidatesKeyContexts
from metering.reports import tier_margin_warning

from .models import Customer, Tier


@admin.register(Tier)
class TierAdmin(InvalidatesKeyContexts, admin.ModelAdmin):
    list_display = (
        "slug",
        "name",
        "price",
        "currency",
        "quota",
        "quota_period",
        "burst",
        "overage_price_per_1000",
        "is_public",
        "is_active",
        "display_order",
        "customer_count",
    )
    list_filter = ("is_active", "is_public", "quota_period", "currency")
    search_fields = ("slug", "name", "stripe_price_id")
    prepopulated_fields = {"slug": ("name",)}
    readonly_fields = ("created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("slug", "name", "is_public", "is_active", "display_order")}),
        ("Price", {"fields": ("price", "currency", "overage_price_per_1000", "stripe_price_id")}),
        ("Limits", {"fields": ("quota", "quota_period", "burst")}),
        ("History", {"fields": ("created_at", "updated_at")}),
    )

    def change_view(self, request, object_id, form_url="", extra_context=None):
        if request.method == "GET":
            tier = self.get_object(request, object_id)
            if tier is not None:
                self._warn_about_margin(request, tier)
        return super().change_view(request, object_id, form_url, extra_context)

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        self._warn_about_margin(request, obj)

    def _warn_about_margin(self, request, tier):
        # A warning, not a block: an operator may price a tier low on purpose.
        warning = tier_margin_warning(tier)
        if warning:
            self.message_user(request, warning, messages.WARNING)

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_customer_count=Count("customers"))

    @admin.display(description="customers", ordering="_customer_count")
    def customer_count(self, tier):
        return tier._customer_count


@admin.register(Customer)
class CustomerAdmin(InvalidatesKeyContexts, admin.ModelAdmin):
    list_display = (
        "user_email",
        "tier",
        "subscription_status",
        "current_period_end",
        "stripe_customer_id",
        "created_at",
    )
    list_filter = ("tier", "subscription_status")
    list_select_related = ("user", "tier")
    search_fields = ("user__email", "user__username", "stripe_customer_id", "stripe_subscription_id")
    raw_id_fields = ("user",)
    readonly_fields = ("created_at", "updated_at")
    date_hierarchy = "created_at"
    fieldsets = (
        (None, {"fields": ("user", "tier")}),
        ("Negotiated limits", {"fields": ("quota_override", "burst_override")}),
        (
            "Stripe",
            {
                "fields": (
                    "stripe_customer_id",
                    "stripe_subscription_id",
                    "subscription_status",
                    "current_period_start",
                    "current_period_end",
                )
            },
        ),
        ("History", {"fields": ("created_at", "updated_at")}),
    )

    @admin.display(description="email", ordering="user__email")
    def user_email(self, customer):
        return customer.user.email
