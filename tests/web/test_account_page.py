"""The account page: change the password, change the email (confirmed before
it counts), delete the account."""

import re
from datetime import timedelta

import pytest
from allauth.account.models import EmailAddress
from django.contrib.auth import get_user_model
from django.core import mail
from django.test import Client
from django.utils import timezone

from apikeys.models import APIKey
from apikeys.services import api_key_create
from metering.models import UsageRecord
from plans.models import Customer
from saas.dashboard import top_customers_by_usage
from tests.web.conftest import confirm_email
from tests.web.pages import text

PASSWORD = "correct horse battery staple"
NEW_PASSWORD = "another horse, another battery"


@pytest.fixture
def alice(alice):
    """Alice (tests/web/conftest.py: her email confirmed), with a password set."""
    alice.user.set_password(PASSWORD)
    alice.user.save()
    return alice


def log_in(login="alice@example.com", password=PASSWORD) -> Client:
    client = Client()
    client.post("/accounts/login/", {"login": login, "password": password})
    return client


def signed_in(client) -> bool:
    return client.get("/dashboard/").status_code == 200


def link_in(message, path) -> str:
    return re.search(rf"https?://\S+({path}\S+/)", message.body).group(1)


# The page ----------------------------------------------------------------------


def test_the_account_page_needs_a_login(client, db):
    assert client.get("/dashboard/account/")["Location"].startswith("/accounts/login/")


def test_the_account_page_offers_password_email_and_deletion(alice_client):
    response = alice_client.get("/dashboard/account/")
    html = response.content.decode()
    assert response.status_code == 200
    assert "You sign in with alice@example.com" in text(response)
    for href in ["/accounts/password/change/", "/accounts/email/", "/dashboard/account/delete/"]:
        assert f'href="{href}"' in html


def test_the_navigation_and_the_dashboard_link_to_the_account_page(alice_client):
    html = alice_client.get("/dashboard/").content.decode()
    assert html.count('href="/dashboard/account/"') == 2


# Password -------------------------------------------------------------------------


def change_password(client, old=PASSWORD, new=NEW_PASSWORD):
    return client.post("/accounts/password/change/", {"oldpassword": old, "password1": new, "password2": new})


def test_the_password_change_page_uses_the_site_layout(alice_client):
    html = alice_client.get("/accounts/password/change/").content.decode()
    assert 'class="card auth"' in html and 'class="site-header"' in html


def test_changing_the_password_returns_to_the_account_page_and_the_new_one_works(alice_client):
    response = change_password(alice_client)
    assert response["Location"] == "/dashboard/account/"
    assert signed_in(alice_client)  # this session stays signed in
    assert signed_in(log_in(password=NEW_PASSWORD))
    assert not signed_in(log_in(password=PASSWORD))


def test_a_password_change_is_told_to_the_address(alice_client):
    change_password(alice_client)
    assert mail.outbox[-1].to == ["alice@example.com"]
    assert mail.outbox[-1].subject.startswith("[Tiered API] ")


def test_a_wrong_current_password_changes_nothing(alice_client):
    response = change_password(alice_client, old="wrong")
    assert response.status_code == 200
    assert "Please type your current password" in response.content.decode()
    assert signed_in(log_in(password=PASSWORD))


# Email ----------------------------------------------------------------------------


def change_email(client, email="alice@new.example"):
    return client.post("/accounts/email/", {"email": email, "action_add": ""})


def test_a_new_email_waits_for_its_confirmation(alice, alice_client):
    change_email(alice_client)
    alice.user.refresh_from_db()
    assert alice.user.email == "alice@example.com"
    assert mail.outbox[-1].to == ["alice@new.example"]
    page = text(alice_client.get("/dashboard/account/"))
    assert "Changing to alice@new.example : follow the link we sent there." in page


def test_until_it_is_confirmed_the_new_address_is_not_a_login(alice, alice_client):
    change_email(alice_client)
    assert not signed_in(log_in(login="alice@new.example"))
    assert signed_in(log_in(login="alice@example.com"))


def test_confirming_the_new_address_makes_it_the_login_and_drops_the_old(alice, alice_client):
    change_email(alice_client)
    alice_client.post(link_in(mail.outbox[-1], "/accounts/confirm-email/"))
    user = get_user_model().objects.get(pk=alice.user.pk)
    assert (user.email, user.username) == ("alice@new.example", "alice@new.example")
    assert list(EmailAddress.objects.filter(user=user).values_list("email", "primary", "verified")) == [
        ("alice@new.example", True, True)
    ]
    assert signed_in(log_in(login="alice@new.example"))
    assert not signed_in(log_in(login="alice@example.com"))


def test_a_username_that_was_not_the_email_stays(alice, alice_client):
    get_user_model().objects.filter(pk=alice.user.pk).update(username="alice")
    change_email(alice_client)
    alice_client.post(link_in(mail.outbox[-1], "/accounts/confirm-email/"))
    user = get_user_model().objects.get(pk=alice.user.pk)
    assert (user.email, user.username) == ("alice@new.example", "alice")


def test_a_username_another_user_holds_is_left_and_the_change_still_happens(alice, alice_client):
    get_user_model().objects.create_user(username="alice@new.example", email="someone@example.com")
    change_email(alice_client)
    alice_client.post(link_in(mail.outbox[-1], "/accounts/confirm-email/"))
    user = get_user_model().objects.get(pk=alice.user.pk)
    assert (user.email, user.username) == ("alice@new.example", "alice@example.com")
    assert signed_in(log_in(login="alice@new.example"))


def test_the_old_address_is_told_of_the_change(alice, alice_client):
    change_email(alice_client)
    alice_client.post(link_in(mail.outbox[-1], "/accounts/confirm-email/"))
    assert mail.outbox[-1].to == ["alice@example.com"]
    assert "alice@new.example" in mail.outbox[-1].body


def test_an_address_another_account_uses_cannot_be_taken(alice, alice_client, other_customer):
    confirm_email(other_customer.user)
    change_email(alice_client, email="bob@example.com")
    for message in mail.outbox:  # even with Bob's help
        for link in re.findall(r"https?://\S+(/accounts/confirm-email/\S+/)", message.body):
            alice_client.post(link)
    alice.user.refresh_from_db()
    assert alice.user.email == "alice@example.com"
    assert EmailAddress.objects.get(email="bob@example.com", verified=True).user == other_customer.user
    assert signed_in(log_in(login="alice@example.com"))


# Deletion ------------------------------------------------------------------------


def delete(client, password=PASSWORD):
    return client.post("/dashboard/account/delete/", {"password": password})


def test_the_deletion_page_says_what_will_happen(alice, alice_client):
    api_key_create(customer=alice, name="laptop")
    page = text(alice_client.get("/dashboard/account/delete/"))
    assert "Your 1 API key stops working at once." in page
    assert "You have no paid subscription to cancel." in page


def test_a_wrong_password_deletes_nothing(alice, alice_client):
    response = delete(alice_client, password="wrong")
    assert response.status_code == 400
    assert "incorrect" in text(response).lower()
    assert signed_in(alice_client)
    assert get_user_model().objects.get(pk=alice.user.pk).email == "alice@example.com"


def test_deleting_signs_out_and_shows_a_confirmation(alice, alice_client):
    response = delete(alice_client)
    assert response["Location"] == "/dashboard/account/deleted/"
    assert "Your account is deleted" in text(alice_client.get(response["Location"]))
    assert not signed_in(alice_client)


def test_the_confirmation_page_shows_once(alice, alice_client):
    url = delete(alice_client)["Location"]
    alice_client.get(url)
    assert alice_client.get(url)["Location"] == "/"


def test_deleting_erases_the_person_and_every_other_session(alice, alice_client):
    elsewhere = log_in()
    delete(alice_client)
    user = get_user_model().objects.get(pk=alice.user.pk)
    assert (user.email, user.username, user.first_name, user.is_active) == (
        "",
        f"deleted-{user.pk}",
        "",
        False,
    )
    assert not user.has_usable_password()
    assert not EmailAddress.objects.filter(user=user).exists()
    assert not signed_in(elsewhere)
    assert not signed_in(log_in())


def test_deleting_revokes_every_key_and_the_api_refuses_them(
    alice, alice_client, api_client, django_capture_on_commit_callbacks
):
    raw_keys = [api_key_create(customer=alice, name=name).raw_key for name in ("a", "b")]
    for raw_key in raw_keys:  # their contexts are now cached
        assert (
            api_client.get("/api/v1/echo?msg=hi", HTTP_AUTHORIZATION=f"Bearer {raw_key}").status_code == 200
        )
    with django_capture_on_commit_callbacks(execute=True):
        delete(alice_client)
    assert not APIKey.objects.filter(customer=alice, revoked_at__isnull=True).exists()
    for raw_key in raw_keys:
        assert (
            api_client.get("/api/v1/echo?msg=hi", HTTP_AUTHORIZATION=f"Bearer {raw_key}").status_code == 401
        )


def test_usage_stays_with_the_customer_for_billing(alice, alice_client):
    key = api_key_create(customer=alice, name="laptop").api_key
    hour = timezone.now().replace(minute=0, second=0, microsecond=0)
    UsageRecord.objects.create(customer=alice, api_key=key, endpoint="echo", hour=hour, count=7)
    delete(alice_client)
    customer = Customer.objects.get(pk=alice.pk)
    assert UsageRecord.objects.get(customer=customer).count == 7
    assert str(customer) == f"deleted-{alice.user.pk}"


def test_the_operator_dashboard_still_counts_a_deleted_customers_usage(alice, alice_client, admin_client):
    key = api_key_create(customer=alice, name="laptop").api_key
    hour = timezone.now().replace(minute=0, second=0, microsecond=0)
    UsageRecord.objects.create(customer=alice, api_key=key, endpoint="echo", hour=hour, count=7)
    delete(alice_client)
    (row,) = top_customers_by_usage(since=hour - timedelta(days=1))
    assert (row.customer_id, row.email, row.units) == (alice.pk, "", 7)
    page = admin_client.get("/admin/dashboard/")
    assert page.status_code == 200
    assert f'/admin/plans/customer/{alice.pk}/change/">{alice.pk}</a>' in page.content.decode()


def test_the_deleted_address_can_sign_up_again_as_a_new_customer(alice, alice_client):
    delete(alice_client)
    response = Client().post(
        "/accounts/signup/", {"email": "alice@example.com", "password1": PASSWORD, "password2": PASSWORD}
    )
    assert response.status_code == 302
    assert Customer.objects.filter(user__email="alice@example.com").exclude(pk=alice.pk).exists()


def test_the_deletion_needs_a_login(client, db):
    assert client.post("/dashboard/account/delete/", {"password": "x"})["Location"].startswith(
        "/accounts/login/"
    )
