"""``RedisSessionStore.search_turns``: searched in the wrapped store (memory, SQLite FTS5), so
the search contract holds through the cache too, deletes included."""

from __future__ import annotations

from tests.stores import test_search as search

test_finds_the_turns_that_share_a_word_best_first = (
    search.test_finds_the_turns_that_share_a_word_best_first
)
test_only_the_users_own_sessions = search.test_only_the_users_own_sessions
test_deleted_sessions_are_never_found = search.test_deleted_sessions_are_never_found
test_search_covers_exactly_the_transcripts = search.test_search_covers_exactly_the_transcripts
