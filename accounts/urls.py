from django.urls import path

from . import account_views, views

app_name = "dashboard"

urlpatterns = [
    path("", views.dashboard, name="index"),
    path("keys/", views.key_create, name="key_create"),
    path("keys/new/", views.key_created, name="key_created"),
    path("keys/usage.csv", views.key_usage_csv, name="key_usage_csv"),
    path("keys/<int:pk>/revoke/", views.key_revoke, name="key_revoke"),
    path("keys/<int:pk>/rotate/", views.key_rotate, name="key_rotate"),
    path("account/", account_views.account, name="account"),
    path("account/delete/", account_views.account_delete_view, name="account_delete"),
    path("account/deleted/", account_views.account_deleted, name="account_deleted"),
]
