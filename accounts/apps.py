from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts and customer dashboard"

    def ready(self):
        from allauth.account.signals import email_changed

        from . import checks  # noqa: F401  (registers the system checks)
        from .services import on_email_changed

        email_changed.connect(on_email_changed, dispatch_uid="accounts.email_changed")
