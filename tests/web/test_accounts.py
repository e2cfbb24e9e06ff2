import re

import pytest
from allauth.account.models import EmailAddress
from django.contrib.auth import get_user_model
from django.core import mail
from django.test import Client

from plans.models import Customer

PASSWORD = "correct horse battery staple"


def sign_up(client, email="carol@example.com", password=PASSWORD, password2=None):
    return client.post(
        "/accounts/signup/", {"email": email, "password1": password, "password2": password2 or password}
    )


def confirmation_link(message) -> str:
    return re.search(r"https?://\S+/accounts/confirm-email/\S+/", message.body).group(0)


def test_the_sign_up_and_login_pages_use_the_site_layout(client, db):
    for path in ["/accounts/signup/", "/accounts/login/", "/accounts/password/reset/"]:
        html = client.get(path).content.decode()
        assert 'class="site-header"' in html, path
        assert 'class="card auth"' in html, path


def test_signing_up_creates_a_customer_on_the_free_tier(client, default_tiers):
    response = sign_up(client)
    assert response.status_code == 302
    customer = Customer.objects.get(user__email="carol@example.com")
    assert customer.tier.slug == "free"


def test_a_new_user_is_signed_in_and_lands_on_the_dashboard(client, default_tiers):
    response = sign_up(client)
    assert response["Location"] == "/dashboard/"
    assert client.get("/dashboard/").status_code == 200


def test_the_username_is_the_email_as_for_keys_made_on_the_command_line(client, default_tiers):
    sign_up(client, email="Carol@Example.com")
    assert get_user_model().objects.get(email__iexact="carol@example.com").username == "carol@example.com"


def test_signing_up_sends_a_confirmation_link(client, default_tiers):
    sign_up(client)
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["carol@example.com"]
    assert "/accounts/confirm-email/" in mail.outbox[0].body


def test_following_the_link_confirms_the_email(client, default_tiers):
    sign_up(client)
    link = confirmation_link(mail.outbox[0])
    assert client.get(link).status_code == 200  # a page with a button: mail scanners only GET
    client.post(link)
    assert EmailAddress.objects.get(email="carol@example.com").verified


def test_an_email_already_signed_up_is_refused_with_a_message(client, customer):
    response = sign_up(client, email=customer.user.email)
    assert response.status_code == 200
    assert "already registered" in response.content.decode()
    assert Customer.objects.count() == 1


@pytest.mark.parametrize(
    "password, password2, message",
    [
        ("short", "short", "too short"),
        ("12345678901", "12345678901", "entirely numeric"),
        (PASSWORD, PASSWORD + "!", "same password"),
    ],
)
def test_a_bad_password_is_refused_with_a_message(client, default_tiers, password, password2, message):
    response = sign_up(client, password=password, password2=password2)
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not Customer.objects.exists()


def test_a_bad_email_is_refused_with_a_message(client, default_tiers):
    response = sign_up(client, email="not an email")
    assert response.status_code == 200
    assert "valid email address" in response.content.decode()


def test_login_is_by_email_and_password(client, default_tiers):
    sign_up(Client())
    response = client.post("/accounts/login/", {"login": "carol@example.com", "password": PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == "/dashboard/"


def test_a_wrong_password_is_refused_with_a_message(client, default_tiers):
    sign_up(Client())
    response = client.post("/accounts/login/", {"login": "carol@example.com", "password": "wrong"})
    assert response.status_code == 200
    assert "not correct" in response.content.decode()


def test_login_follows_next_back_to_the_dashboard(client, default_tiers):
    sign_up(Client())
    response = client.post(
        "/accounts/login/?next=/dashboard/",
        {"login": "carol@example.com", "password": PASSWORD, "next": "/dashboard/"},
    )
    assert response["Location"] == "/dashboard/"


def test_logging_out_takes_a_post(alice_client):
    alice_client.post("/accounts/logout/")
    assert alice_client.get("/dashboard/").status_code == 302


def test_a_password_reset_mails_a_link(client, alice):
    response = client.post("/accounts/password/reset/", {"email": alice.user.email})
    assert response.status_code == 302
    assert "/accounts/password/reset/key/" in mail.outbox[-1].body


def test_sign_ups_are_throttled_per_ip(client, default_tiers, settings):
    settings.ACCOUNT_RATE_LIMITS = {**settings.ACCOUNT_RATE_LIMITS, "signup": "2/m/ip"}
    for n in range(2):
        assert sign_up(Client(), email=f"user{n}@example.com").status_code == 302
    response = sign_up(Client(), email="user3@example.com")
    assert response.status_code == 429
    assert "Too many attempts" in response.content.decode()
    assert not get_user_model().objects.filter(email="user3@example.com").exists()


def test_sign_ups_from_another_ip_are_not_throttled(client, default_tiers, settings):
    settings.ACCOUNT_RATE_LIMITS = {**settings.ACCOUNT_RATE_LIMITS, "signup": "1/m/ip"}
    assert sign_up(Client(REMOTE_ADDR="10.0.0.1"), email="one@example.com").status_code == 302
    assert sign_up(Client(REMOTE_ADDR="10.0.0.2"), email="two@example.com").status_code == 302


def test_login_attempts_are_throttled_per_ip(client, default_tiers, settings):
    settings.ACCOUNT_RATE_LIMITS = {**settings.ACCOUNT_RATE_LIMITS, "login": "3/m/ip"}
    for _ in range(3):
        client.post("/accounts/login/", {"login": "nobody@example.com", "password": "wrong"})
    response = client.post("/accounts/login/", {"login": "nobody@example.com", "password": "wrong"})
    assert response.status_code == 429


def test_the_throttle_counts_in_redis_so_every_process_shares_it(client, default_tiers, settings):
    from django_redis import get_redis_connection

    settings.ACCOUNT_RATE_LIMITS = {**settings.ACCOUNT_RATE_LIMITS, "signup": "5/m/ip"}
    sign_up(client)
    assert any(b"allauth:rl" in key for key in get_redis_connection("default").keys("*"))


def test_a_form_without_its_csrf_token_is_refused(default_tiers):
    client = Client(enforce_csrf_checks=True)
    response = sign_up(client)
    assert response.status_code == 403
    assert "This form has expired" in response.content.decode()
    assert not Customer.objects.exists()


def test_turning_the_sign_up_throttle_off_is_warned_about(settings):
    from accounts.checks import rate_limits_check

    assert rate_limits_check(None) == []
    settings.ACCOUNT_RATE_LIMITS = False
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}}
    assert [problem.id for problem in rate_limits_check(None)] == ["accounts.W001", "accounts.W002"]
