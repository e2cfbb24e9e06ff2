from allauth.account.adapter import DefaultAccountAdapter
from allauth.account.utils import user_email, user_username
from django.core.exceptions import ValidationError
from django.db import transaction
from django.urls import reverse

from plans.services import customer_ensure

from .lockout import lockout_minutes

LOCKED_OUT = "Too many failed login attempts. Try again in {minutes}, or reset your password."


class AccountAdapter(DefaultAccountAdapter):
    def populate_username(self, request, user):
        """Username = the email, as `manage.py create_api_key` makes users, so
        both ways of signing up find the same user for one address."""
        email = user_email(user)
        if not user_username(user) and email and len(email) <= 150:
            user_username(user, email.lower())
        super().populate_username(request, user)

    @transaction.atomic
    def save_user(self, request, user, form, commit=True):
        """Every signed-up user gets a customer (free tier) in the same transaction."""
        user = super().save_user(request, user, form, commit=commit)
        if commit:
            customer_ensure(user=user)
        return user

    def pre_authenticate(self, request, **credentials):
        """allauth's lockout (ACCOUNT_RATE_LIMITS["login_failed"]), saying for
        how long: its own message says only "later". The account login and
        the admin login (saas.admin_site) both come through here."""
        try:
            super().pre_authenticate(request, **credentials)
        except ValidationError as error:
            if error.code != "too_many_login_attempts":
                raise
            minutes = lockout_minutes(request, **credentials)
            wait = f"{minutes} minute{'s' if minutes != 1 else ''}"
            raise ValidationError(LOCKED_OUT.format(minutes=wait), code=error.code) from None

    def get_password_change_redirect_url(self, request):
        """Back to the account page the change started from (allauth: the form again)."""
        return reverse("dashboard:account")
