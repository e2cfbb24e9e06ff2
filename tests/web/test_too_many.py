"""The HTML 429 of the account forms says when to try again, as a date and a
time (issue 16, item 5)."""

from datetime import UTC, datetime, timedelta

import pytest

from .pages import text

SIGNED_UP_AT = datetime(2027, 3, 9, 14, 5, 30, tzinfo=UTC)


def sign_up(client, number: int):
    return client.post(
        "/accounts/signup/",
        {"email": f"user{number}@example.com", "password1": "pw-9f8e7d6c5b", "password2": "pw-9f8e7d6c5b"},
    )


@pytest.fixture
def signups_spent(client, default_tiers, settings, time_machine):
    """Three sign-ups allowed per hour and address, all three used at SIGNED_UP_AT."""
    settings.ACCOUNT_RATE_LIMITS = {**settings.ACCOUNT_RATE_LIMITS, "signup": "3/h/ip"}
    time_machine.move_to(SIGNED_UP_AT, tick=False)
    for number in range(3):
        assert sign_up(client, number).status_code == 302
    return client


def test_the_429_page_says_the_date_and_time_to_try_again(signups_spent):
    response = sign_up(signups_spent, 4)
    assert response.status_code == 429
    assert "Please try again after 9 March 2027, 15:05 UTC" in text(response)
    assert 'datetime="2027-03-09T15:05:30+00:00"' in response.content.decode()


def test_the_429_page_has_a_retry_after_to_the_same_moment(signups_spent, time_machine):
    time_machine.move_to(SIGNED_UP_AT + timedelta(minutes=10), tick=False)
    assert sign_up(signups_spent, 4)["Retry-After"] == str(50 * 60)


def test_once_the_hour_has_passed_sign_up_works_again(signups_spent, time_machine):
    time_machine.move_to(SIGNED_UP_AT + timedelta(hours=1, seconds=1), tick=False)
    assert sign_up(signups_spent, 4).status_code == 302
