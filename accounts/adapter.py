from allauth.account.adapter import DefaultAccountAdapter
from allauth.account.utils import user_email, user_username
from django.db import transaction

from plans.services import customer_ensure


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
