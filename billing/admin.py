from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth import get_permission_codename
from django.db.models import Count
from django.urls import path
from django.views.decorators.http import require_safe

from apikeys.admin import InvalidatesKeyContexts
from apikeys.context import customer_key_contexts, tier_key_contexts
from apikeys.models import APIKey
from metering.reports import tier_margin_warning
from metering.selectors import pending_units
from plans.currencies import money_format
from plans.models import Customer, Tier

from .models import (
    ClosedPeriod,
    EventStatus,
    OverageReport,
    StripeEvent,
    StripeSync,
    SyncStatus,
    UsageReconcileRun,
)
from .queueing import APPLY_STRIPE_EVENT, RUN_STRIPE_SYNC, queue_after_commit
from .sync import catalog_sync_queue
from .what_if_admin import what_if_view


@admin.register(Tier)
class TierAdmin(InvalidatesKeyContexts, admin.ModelAdmin):
    list_display = (
        "slug",
        "name",
        "price_shown",
        "quota",
        "quota_period",
        "burst",
        "overage_price_shown",
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
        (
            "Price",
            {
                "fields": (
                    "price",
                    "currency",
                    "overage_price_per_1000",
                    "stripe_product_id",
                    "stripe_price_id",
                    "stripe_overage_price_id",
                )
            },
        ),
        ("Limits", {"fields": ("quota", "quota_period", "burst")}),
        ("History", {"fields": ("created_at", "updated_at")}),
    )

    def get_urls(self):
        # Before the model's own URLs, whose "<path:object_id>/" would take it.
        view = self.admin_site.admin_view(require_safe(self.what_if_view))
        return [path("what-if/", view, name="plans_tier_what_if"), *super().get_urls()]

    def what_if_view(self, request):
        """A proposed price, quota, burst or overage price against the last
        30 days of usage (billing.what_if_admin); linked from the tier pages."""
        return what_if_view(request, self)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        if request.method == "GET":
            tier = self.get_object(request, object_id)
            if tier is not None:
                self._warn_about_margin(request, tier)
        return super().change_view(request, object_id, form_url, extra_context)

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        self._warn_about_margin(request, obj)
        if catalog_sync_queue(obj) is not None:
            self.message_user(request, f"Stripe catalog sync of {obj.name} queued (see Stripe syncs).")

    def _warn_about_margin(self, request, tier):
        # A warning, not a block: an operator may price a tier low on purpose.
        warning = tier_margin_warning(tier)
        if warning:
            self.message_user(request, warning, messages.WARNING)

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_customer_count=Count("customers"))

    # In the site's LANGUAGE_CODE: admin has no visitor locale (its language
    # is not switched per request, see saas.templatetags.money).
    @admin.display(description="price", ordering="price")
    def price_shown(self, tier):
        return money_format(tier.price, tier.currency, locale=settings.LANGUAGE_CODE)

    @admin.display(description="overage per 1,000", ordering="overage_price_per_1000")
    def overage_price_shown(self, tier):
        if not tier.has_overage:
            return "hard limit"
        return money_format(tier.overage_price_per_1000, tier.currency, locale=settings.LANGUAGE_CODE)

    @admin.display(description="customers", ordering="_customer_count")
    def customer_count(self, tier):
        return tier._customer_count

    def key_contexts_of(self, objects):
        return tier_key_contexts(objects.values_list("pk", flat=True))


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
        ("Negotiated limits", {"fields": ("quota_override", "burst_override", "overage_spending_cap")}),
        (
            "Stripe",
            {
                "fields": (
                    "stripe_customer_id",
                    "stripe_subscription_id",
                    "subscription_status",
                    "current_period_start",
                    "current_period_end",
                    "cancel_at_period_end",
                    "past_due_since",
                    "past_due_warned_at",
                    "subscription_event_at",
                )
            },
        ),
        ("History", {"fields": ("created_at", "updated_at")}),
    )

    @admin.display(description="email", ordering="user__email")
    def user_email(self, customer):
        return customer.user.email

    def key_contexts_of(self, objects):
        return customer_key_contexts(objects.values_list("pk", flat=True))

    def get_deleted_objects(self, objs, request):
        """Also protected: usage still in Redis, which the flush would drop
        once its customer is gone (metering.protection refuses it too).

        The key admin deletes no single key (keys are revoked); a customer
        without usage may still go with its keys.
        """
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        perms_needed.discard(APIKey._meta.verbose_name)
        for customer in objs:
            if pending := pending_units(customer_id=customer.pk):
                protected.append(f"{customer}: {sum(pending.values())} billable units not yet flushed")
        return deleted, counts, perms_needed, protected


class RecordAdmin(admin.ModelAdmin):
    """A log written by the app (Stripe events, syncs, reports): read, never added or edited."""

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request):
        return False


class ReplayableAdmin(RecordAdmin):
    """A record an operator may replay, given the model's replay permission
    (billing.replay_stripeevent, billing.replay_stripesync): viewing is not enough."""

    def has_replay_permission(self, request):
        codename = get_permission_codename("replay", self.opts)
        return request.user.has_perm(f"{self.opts.app_label}.{codename}")


@admin.register(StripeEvent)
class StripeEventAdmin(ReplayableAdmin):
    list_display = ("stripe_id", "type", "status", "attempts", "stripe_created", "created_at", "processed_at")
    list_filter = ("status", "type", "livemode")
    search_fields = ("stripe_id", "type", "error")
    date_hierarchy = "created_at"
    actions = ["replay"]

    @admin.action(description="Replay the selected events (apply them again)", permissions=["replay"])
    def replay(self, request, queryset):
        for event in queryset:
            StripeEvent.objects.filter(pk=event.pk).update(status=EventStatus.RECEIVED, error="")
            queue_after_commit(APPLY_STRIPE_EVENT, event.pk)
        self.message_user(request, f"{queryset.count()} event(s) queued to be applied again.")


@admin.register(StripeSync)
class StripeSyncAdmin(ReplayableAdmin):
    list_display = ("operation", "target", "status", "attempts", "created_at", "updated_at")
    list_filter = ("status", "operation")
    search_fields = ("target", "idempotency_key", "error")
    date_hierarchy = "created_at"
    actions = ["replay"]

    @admin.action(
        description="Replay the selected syncs (same idempotency key: no duplicates in Stripe)",
        permissions=["replay"],
    )
    def replay(self, request, queryset):
        replayable = queryset.exclude(status=SyncStatus.SUCCEEDED)
        count = replayable.count()
        for sync in replayable:
            StripeSync.objects.filter(pk=sync.pk).update(status=SyncStatus.PENDING, error="")
            queue_after_commit(RUN_STRIPE_SYNC, sync.pk)
        self.message_user(request, f"{count} sync(s) queued again; succeeded ones are left alone.")


@admin.register(OverageReport)
class OverageReportAdmin(RecordAdmin):
    list_display = ("customer", "hour", "units", "identifier", "reported_at")
    list_filter = ("reported_at",)
    list_select_related = ("customer__user",)
    search_fields = ("identifier", "customer__user__email")
    date_hierarchy = "hour"


@admin.register(UsageReconcileRun)
class UsageReconcileRunAdmin(RecordAdmin):
    list_display = ("ran_at", "periods", "rows_checked", "drifting_rows", "stripe_checked")
    list_filter = ("stripe_checked",)
    date_hierarchy = "ran_at"


@admin.register(ClosedPeriod)
class ClosedPeriodAdmin(RecordAdmin):
    list_display = (
        "customer",
        "start",
        "end",
        "tier",
        "quota",
        "overage_billed",
        "overage_ceiling",
        "closed_at",
    )
    list_filter = ("overage_billed", "tier")
    search_fields = ("customer__user__email", "customer__stripe_customer_id")
    date_hierarchy = "end"
