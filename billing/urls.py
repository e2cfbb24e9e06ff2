from django.urls import path

from . import views

app_name = "billing"

urlpatterns = [
    path("checkout/", views.checkout, name="checkout"),
    path("checkout/return/", views.checkout_return, name="checkout_return"),
    path("portal/", views.portal, name="portal"),
    path("spending-cap/", views.spending_cap, name="spending_cap"),
    path("stripe/webhook/", views.stripe_webhook, name="stripe_webhook"),
]
