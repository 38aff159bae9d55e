"""API keys: the environment format, hashed keys, and lookups (no stack needed)."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from durable_sessions.http import ApiKeyAuth, hash_api_key, parse_api_keys


def test_parse_plain_and_hashed_pairs() -> None:
    digest = hashlib.sha256(b"k2").hexdigest()
    spec = f" k1=alice , sha256:{digest}=bob,,padded==carol "
    assert parse_api_keys(spec) == {"k1": "alice", f"sha256:{digest}": "bob", "padded=": "carol"}
    assert parse_api_keys("") == {}


@pytest.mark.parametrize(
    "spec",
    ["no-equals", "=user", "key=", "sha256:abc=user", "sha256:" + "zz" * 32 + "=user"],
)
def test_parse_rejects_bad_entries_without_echoing_keys(spec: str) -> None:
    with pytest.raises(ValueError, match="entry 1") as info:
        parse_api_keys(spec)
    assert "no-equals" not in str(info.value)


def test_lookup_by_plain_and_hashed_key() -> None:
    auth = ApiKeyAuth({"k1": "alice", hash_api_key("k2"): "bob"})
    assert auth.user_for_key("k1") == "alice"
    assert auth.user_for_key("k2") == "bob"
    assert auth.user_for_key(hash_api_key("k2")) is None  # the hash is not a key
    assert auth.user_for_key("k3") is None
    assert auth.user_for_key("") is None
    assert auth.user_for_header("Bearer k1") == "alice"
    assert auth.user_for_header("bearer   k2 ") == "bob"
    assert auth.user_for_header("Basic k1") is None
    assert auth.user_for_header("k1") is None
    assert auth.user_for_header(None) is None
    # Only digests are held.
    assert "k1" not in repr(vars(auth))


def test_one_key_for_two_users_is_refused() -> None:
    with pytest.raises(ValueError, match="two different users"):
        ApiKeyAuth({"k": "alice", hash_api_key("k"): "bob"})
    ApiKeyAuth({"k": "alice", hash_api_key("k"): "alice"})  # the same user twice is fine
    with pytest.raises(ValueError, match="must not be empty"):
        ApiKeyAuth({"k": ""})


@given(
    st.dictionaries(
        st.text(
            st.characters(codec="utf-8", exclude_characters=",="), min_size=1, max_size=20
        ).filter(lambda s: s.strip() == s and not s.startswith("sha256:")),
        st.text(
            st.characters(codec="utf-8", exclude_characters=",="), min_size=1, max_size=10
        ).filter(lambda s: s.strip() == s),
        max_size=5,
    )
)
def test_parse_round_trips(keys: dict[str, str]) -> None:
    spec = ",".join(f"{k}={v}" for k, v in keys.items())
    assert parse_api_keys(spec) == keys
    auth = ApiKeyAuth(parse_api_keys(spec))
    for key, user in keys.items():
        assert auth.user_for_key(key) == user
