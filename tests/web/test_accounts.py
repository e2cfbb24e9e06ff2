import re

import pytest
from allauth.account.models import EmailAddress
from django.contrib.auth import get_user_model
from django.core import mail
from django.test import Client

from accounts import lockout
from plans.models import Customer
from tests.utils import utc

PASSWORD = "correct horse battery staple"


def sign_up(client, email="carol@example.com", password=PASSWORD, password2=None):
    return client.post(
        "/accounts/signup/", {"email": email, "password1": password, "password2": password2 or password}
    )


def confirmation_link(message) -> str:
    return re.search(r"https?://\S+/accounts/confirm-email/\S+/", message.body).group(0)


def signed_up_and_confirmed(email="carol@example.com"):
    """Carol, signed up and her address confirmed: she may log in."""
    sign_up(Client(), email=email)
    EmailAddress.objects.filter(email=email).update(verified=True)


def log_in(client, login="carol@example.com", password=PASSWORD):
    return client.post("/accounts/login/", {"login": login, "password": password})


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


def test_a_new_user_is_asked_to_confirm_the_email_before_signing_in(client, default_tiers):
    response = sign_up(client)
    assert response["Location"] == "/accounts/confirm-email/"
    assert "Verify Your Email Address" in client.get(response["Location"]).content.decode()
    assert client.get("/dashboard/").status_code == 302


def test_following_the_link_signs_the_new_user_in_on_the_dashboard(client, default_tiers):
    sign_up(client)
    response = client.post(confirmation_link(mail.outbox[0]))
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


def test_signing_up_with_a_registered_email_answers_as_for_a_new_one(default_tiers, customer):
    new, registered = Client(), Client()
    answers = [sign_up(new, email="new@example.com"), sign_up(registered, email=customer.user.email)]
    assert [(a.status_code, a["Location"]) for a in answers] == [(302, "/accounts/confirm-email/")] * 2
    pages = [client.get("/accounts/confirm-email/").content.decode() for client in (new, registered)]
    assert pages[0].replace("new@example.com", "@") == pages[1].replace(customer.user.email, "@")
    assert Customer.objects.filter(user__email=customer.user.email).count() == 1


def test_the_registered_owner_of_the_address_is_emailed_instead(client, customer):
    sign_up(client, email=customer.user.email)
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == [customer.user.email]
    assert "an account using that email address already exists" in mail.outbox[0].body
    assert "/accounts/password/reset/" in mail.outbox[0].body


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
    signed_up_and_confirmed()
    response = log_in(client)
    assert response.status_code == 302
    assert response["Location"] == "/dashboard/"


def test_a_login_before_the_email_is_confirmed_is_sent_to_confirm_it(client, default_tiers):
    sign_up(Client())
    response = log_in(client)
    assert response["Location"] == "/accounts/confirm-email/"
    assert client.get("/dashboard/").status_code == 302


def test_a_wrong_password_is_refused_with_a_message(client, default_tiers):
    signed_up_and_confirmed()
    response = log_in(client, password="wrong")
    assert response.status_code == 200
    assert "not correct" in response.content.decode()


def test_an_unknown_email_is_refused_with_the_same_message(client, default_tiers):
    signed_up_and_confirmed()
    unknown, wrong = log_in(Client(), login="nobody@example.com"), log_in(client, password="wrong")
    assert unknown.status_code == wrong.status_code == 200
    assert unknown.context["form"].errors == wrong.context["form"].errors


def test_after_5_failed_logins_even_the_right_password_waits_and_is_told_how_long(
    client, default_tiers, time_machine
):
    signed_up_and_confirmed()
    time_machine.move_to(utc(2027, 1, 10, 12), tick=False)
    for _ in range(5):  # one a second
        assert "not correct" in log_in(client, password="wrong").content.decode()
        time_machine.shift(1)
    time_machine.shift(120)  # 125 s after the first failure: 175 s of the 5 minutes are left
    response = log_in(client)
    assert response.status_code == 200
    assert "Too many failed login attempts. Try again in 3 minutes" in response.content.decode()
    time_machine.shift(175)
    assert log_in(client).status_code == 302


def test_the_lockout_names_the_longest_window_on_an_allauth_version_it_was_not_tested_with(
    client, default_tiers, monkeypatch
):
    monkeypatch.setattr(lockout, "TESTED_ALLAUTH_VERSION", "0.0.0")
    signed_up_and_confirmed()
    for _ in range(5):
        log_in(client, password="wrong")
    assert "Try again in 5 minutes" in log_in(client).content.decode()


def test_a_password_reset_ends_the_lockout(client, default_tiers):
    signed_up_and_confirmed()
    for _ in range(5):
        log_in(client, password="wrong")
    client.post("/accounts/password/reset/", {"email": "carol@example.com"})
    link = re.search(r"https?://\S+(/accounts/password/reset/key/\S+/)", mail.outbox[-1].body).group(1)
    form_url = client.get(link)["Location"]
    new_password = PASSWORD + " again"
    client.post(form_url, {"password1": new_password, "password2": new_password})
    assert log_in(Client(), password=new_password).status_code == 302


def test_login_follows_next_back_to_the_dashboard(client, default_tiers):
    signed_up_and_confirmed()
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


def test_a_password_reset_for_an_unknown_email_answers_as_for_a_known_one(alice):
    known = Client().post("/accounts/password/reset/", {"email": alice.user.email})
    unknown = Client().post("/accounts/password/reset/", {"email": "nobody@example.com"})
    assert (known.status_code, known["Location"]) == (unknown.status_code, unknown["Location"])
    assert mail.outbox[-1].to == ["nobody@example.com"]
    assert "/accounts/password/reset/key/" not in mail.outbox[-1].body


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


@pytest.mark.parametrize(
    "setting, value", [("ACCOUNT_EMAIL_VERIFICATION", "optional"), ("ACCOUNT_PREVENT_ENUMERATION", False)]
)
def test_sign_up_telling_who_is_registered_is_warned_about(settings, setting, value):
    from accounts.checks import enumeration_check

    assert enumeration_check(None) == []
    setattr(settings, setting, value)
    assert [problem.id for problem in enumeration_check(None)] == ["accounts.W003"]
