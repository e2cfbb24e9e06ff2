from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from apikeys.keys import is_well_formed
from apikeys.models import APIKey
from plans.models import Customer
from tests.utils import manage_py


def create_key(*args) -> str:
    out = StringIO()
    call_command("create_api_key", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_it_prints_the_raw_key_alone_on_the_last_line(default_tiers):
    last_line = create_key("--email", "carol@example.com").splitlines()[-1]
    assert is_well_formed(last_line, "tk_live_")


def test_it_creates_the_user_and_customer_on_the_free_tier(default_tiers):
    create_key("--email", "carol@example.com")
    customer = Customer.objects.get(user__email="carol@example.com")
    assert customer.tier.slug == "free"


def test_it_honours_tier_and_name(default_tiers):
    create_key("--email", "dave@example.com", "--tier", "pro", "--name", "server")
    key = APIKey.objects.get(customer__user__email="dave@example.com")
    assert (key.customer.tier.slug, key.name) == ("pro", "server")


def test_a_second_key_reuses_the_customer(customer):
    create_key("--email", "alice@example.com")
    create_key("--email", "ALICE@example.com")
    assert Customer.objects.count() == 1
    assert APIKey.objects.filter(customer=customer).count() == 2


def test_an_existing_customer_keeps_their_tier(customer):
    create_key("--email", "alice@example.com", "--tier", "pro")
    customer.refresh_from_db()
    assert customer.tier.slug == "free"


def test_an_unknown_tier_is_an_error(default_tiers):
    with pytest.raises(CommandError, match="Tier 'gold' does not exist"):
        create_key("--email", "erin@example.com", "--tier", "gold")
    assert not Customer.objects.exists()


def test_an_invalid_email_is_an_error(default_tiers):
    with pytest.raises(CommandError, match="not a valid email"):
        create_key("--email", "not-an-email")


@pytest.mark.django_db(transaction=True)
def test_the_printed_key_authenticates_from_the_shell(default_tiers, api_client):
    result = manage_py("create_api_key", "--email", "frank@example.com")
    assert result.returncode == 0, result.stderr
    raw_key = result.stdout.strip().splitlines()[-1]
    assert api_client.get("/api/v1/echo", {"msg": "hi"}, HTTP_X_API_KEY=raw_key).json() == {
        "query": {"msg": "hi"}
    }


def test_a_customer_at_the_key_limit_gets_a_message_not_a_traceback(default_tiers, settings):
    settings.API_KEYS_PER_CUSTOMER = 1
    create_key("--email", "carol@example.com")
    with pytest.raises(CommandError, match="1 active key, the most allowed"):
        create_key("--email", "carol@example.com")


def test_a_name_of_only_invisible_characters_gets_a_message(default_tiers):
    with pytest.raises(CommandError, match="visible character"):
        create_key("--email", "carol@example.com", "--name", "\u200b")
