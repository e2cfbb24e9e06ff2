from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class SaasConfig(AppConfig):
    name = "saas"
    verbose_name = "Site"


# Reached through its module: a bare AdminConfig name here would make Django
# see two candidate default configs for "saas".
class OperatorAdminConfig(admin_apps.AdminConfig):
    """django.contrib.admin with our site class, which adds the operator dashboard."""

    default = False
    default_site = "saas.admin_site.OperatorAdminSite"
