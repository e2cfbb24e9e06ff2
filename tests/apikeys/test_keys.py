import math
import re

from apikeys import keys

PREFIX = "tk_live_"


def test_a_key_has_the_readable_prefix_secret_and_checksum():
    key = keys.generate_key(PREFIX)
    assert re.fullmatch(r"tk_live_[0-9A-Za-z]{46}", key)


def test_the_secret_carries_at_least_160_bits_beyond_the_public_prefix():
    hidden_characters = keys.SECRET_LENGTH - keys.PUBLIC_CHARS
    assert hidden_characters * math.log2(len(keys.ALPHABET)) >= 160


def test_keys_are_unique():
    assert len({keys.generate_key(PREFIX) for _ in range(1000)}) == 1000


def test_a_generated_key_is_well_formed():
    assert keys.is_well_formed(keys.generate_key(PREFIX), PREFIX)


def test_any_single_mistyped_character_is_caught_by_the_checksum():
    key = keys.generate_key(PREFIX)
    for position in range(len(PREFIX), len(key)):
        for replacement in "0aZ":
            if key[position] != replacement:
                typo = key[:position] + replacement + key[position + 1 :]
                assert not keys.is_well_formed(typo, PREFIX), (position, replacement)


def test_swapped_neighbouring_characters_are_caught():
    key = keys.generate_key(PREFIX)
    for position in range(len(PREFIX), len(key) - 1):
        swapped = key[:position] + key[position + 1] + key[position] + key[position + 2 :]
        if swapped != key:
            assert not keys.is_well_formed(swapped, PREFIX)


def test_a_truncated_or_extended_key_is_malformed():
    key = keys.generate_key(PREFIX)
    assert not keys.is_well_formed(key[:-1], PREFIX)
    assert not keys.is_well_formed(key + "0", PREFIX)


def test_a_key_with_another_prefix_is_malformed():
    key = keys.generate_key("tk_test_")
    assert not keys.is_well_formed(key, PREFIX)


def test_characters_outside_base62_are_malformed():
    key = keys.generate_key(PREFIX)
    assert not keys.is_well_formed(key[:-7] + "-" + key[-6:], PREFIX)
    assert not keys.is_well_formed(key[:-7] + "é" + key[-6:], PREFIX)


def test_garbage_is_malformed():
    for garbage in ["", "x", "Bearer", PREFIX, "tk_live_" + "0" * 46]:
        assert not keys.is_well_formed(garbage, PREFIX)


def test_the_public_prefix_is_the_prefix_and_eight_secret_characters():
    key = keys.generate_key(PREFIX)
    assert keys.public_prefix(key, PREFIX) == key[:16]


def test_the_hash_is_hmac_sha256_with_the_pepper():
    import hashlib
    import hmac

    key = keys.generate_key(PREFIX)
    expected = hmac.new(b"pepper", key.encode(), hashlib.sha256).hexdigest()
    assert keys.hash_key(key, "pepper") == expected


def test_the_hash_depends_on_the_pepper():
    key = keys.generate_key(PREFIX)
    assert keys.hash_key(key, "one") != keys.hash_key(key, "two")
