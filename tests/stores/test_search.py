"""The search contract (``TurnSearch.search_turns``, behind ``manager.recall``), on every backend.

Memory, SQLite (FTS5) and PostgreSQL (``tsvector`` + GIN) must agree on *which* turns a search
finds and under which session; scores only have to rank the same way where the evidence is
clear. The memory store's scan is the reference.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from durable_sessions.errors import RecallUnavailableError
from durable_sessions.models import SessionTurn
from durable_sessions.stores import TurnMatch, TurnSearch
from durable_sessions.stores.base import SessionStore, read_transcript
from durable_sessions.stores.factory import store_from_url
from durable_sessions.stores.memory import InMemorySessionStore
from durable_sessions.stores.postgres import PostgresSessionStore
from durable_sessions.stores.sqlite import SQLiteSessionStore
from tests.pg import postgres_dsn_or_skip, temporary_schema
from tests.stores.test_contract import at, header, persist, turns

SearchStore = Callable[..., SessionStore]


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SearchStore]:
    """``make_store(recall=True)``: stores over one location (file, schema), not set up."""
    kind: str = request.param
    made: list[SessionStore] = []
    memory = InMemorySessionStore()
    async with AsyncExitStack() as stack:
        dsn = schema = ""
        if kind == "postgres":
            dsn = await postgres_dsn_or_skip()
            schema = await stack.enter_async_context(temporary_schema(dsn))

        def make(*, recall: bool = True) -> SessionStore:
            if kind == "memory":
                return memory
            s: SessionStore
            if kind == "sqlite":
                s = SQLiteSessionStore(tmp_path / "search.db", recall=recall)
            else:
                s = PostgresSessionStore(dsn, schema=schema, max_size=2, recall=recall)
            made.append(s)
            return s

        try:
            yield make
        finally:
            for s in made:
                await s.close()


@pytest.fixture
async def store(make_store: SearchStore) -> SessionStore:
    s = make_store()
    await s.setup()
    return s


def said(prefix: str, texts: list[str], start: int = 0) -> list[SessionTurn]:
    """Turns ``{prefix}-{seq}`` with the given contents from seq ``start``."""
    out = turns(prefix, range(start, start + len(texts)))
    return [t.model_copy(update={"content": text}) for t, text in zip(out, texts, strict=True)]


async def search(
    store: SessionStore, query: str, *, user: str = "u1", limit: int = 50, **kw: object
) -> list[TurnMatch]:
    assert isinstance(store, TurnSearch)
    return await store.search_turns(user, query, limit=limit, **kw)  # type: ignore[arg-type]


def found(matches: list[TurnMatch]) -> list[tuple[str, str]]:
    """``(session reported, turn_id)`` of each match, in answer order."""
    return [(m.session_id, m.turn.turn_id) for m in matches]


async def test_finds_the_turns_that_share_a_word_best_first(store: SessionStore) -> None:
    await persist(
        store,
        header("s1", turn_count=4),
        said(
            "a",
            [
                "We adopted a kitten named Pepper last week",
                "The weather is grey and wet today",
                "Pepper the kitten sleeps on the keyboard; Pepper loves the warm laptop",
                "Shall we book the train tickets?",
            ],
        ),
    )
    got = await search(store, "kitten Pepper")
    assert {tid for _, tid in found(got)} == {"a-0", "a-2"}
    assert got[0].turn.turn_id == "a-2"  # both words, one of them twice
    assert got[0].score >= got[1].score > 0
    assert got[0].turn.content.startswith("Pepper the kitten")
    assert got[0].turn.seq == 2
    assert await search(store, "volcano") == []
    assert await search(store, "the and of") == []  # stop words only
    assert await search(store, "   ") == []
    assert await search(store, "kitten", limit=0) == []


async def test_query_syntax_is_never_interpreted(store: SessionStore) -> None:
    await persist(store, header("s1", turn_count=1), said("a", ["near the kitten, or not"]))
    queries = ['kitten" OR "', "NEAR(kitten)", "kitten*", "'kitten' & !", "kitten:*", "-(kitten)"]
    for query in queries:
        assert found(await search(store, query)) == [("s1", "a-0")], query


async def test_only_the_users_own_sessions(store: SessionStore) -> None:
    await persist(store, header("mine", turn_count=1), said("m", ["my secret lighthouse"]))
    other = header("theirs", user_id="u2", turn_count=1)
    await persist(store, other, said("t", ["their secret lighthouse"]))
    assert found(await search(store, "lighthouse")) == [("mine", "m-0")]
    assert found(await search(store, "lighthouse", user="u2")) == [("theirs", "t-0")]
    # Naming another user's session does not open it.
    assert found(await search(store, "lighthouse", session_ids=["theirs", "mine"])) == [
        ("mine", "m-0")
    ]
    assert await search(store, "lighthouse", session_ids=["theirs"]) == []
    assert await search(store, "lighthouse", session_ids=[]) == []
    assert await search(store, "lighthouse", session_ids=["no\x00such"]) == []
    assert await search(store, "lighthouse", user="nobody") == []


async def test_sessions_subset_and_limit(store: SessionStore) -> None:
    for i in range(5):
        await persist(
            store,
            header(f"s{i}", created_at=at(i), turn_count=2),
            said(f"s{i}", [f"harbour report number {i}", "unrelated chatter"]),
        )
    assert len(await search(store, "harbour", limit=3)) == 3
    assert len(await search(store, "harbour")) == 5
    subset = await search(store, "harbour", session_ids=["s1", "s3"])
    assert sorted(found(subset)) == [("s1", "s1-0"), ("s3", "s3-0")]


async def test_deleted_sessions_are_never_found(store: SessionStore) -> None:
    await persist(store, header("keep", turn_count=1), said("k", ["orchard apples"]))
    await persist(store, header("gone", turn_count=1), said("g", ["orchard pears"]))
    assert len(await search(store, "orchard")) == 2
    assert await store.delete_session("gone")
    assert found(await search(store, "orchard")) == [("keep", "k-0")]
    assert await search(store, "pears") == []


async def test_a_rewritten_turn_is_found_by_its_new_text(store: SessionStore) -> None:
    # A retried flush may rewrite a stored turn (an upsert); the index follows.
    await persist(store, header("s1", turn_count=1), said("a", ["original glacier text"]))
    await persist(store, header("s1", turn_count=1), said("a", ["replacement canyon text"]))
    assert await search(store, "glacier") == []
    assert found(await search(store, "canyon")) == [("s1", "a-0")]


async def test_rewound_turns_are_not_in_the_transcript(store: SessionStore) -> None:
    await persist(store, header("s1", turn_count=4), said("g0", ["zebra one", "zebra two"] * 2))
    await store.add_generation("s1", 1, 0, 2)  # restore to seq 2, then one new turn
    await persist(store, header("s1", generation=1, turn_count=3), said("g1", ["zebra new"], 2))
    got = await search(store, "zebra")
    assert sorted(found(got)) == [("s1", "g0-0"), ("s1", "g0-1"), ("s1", "g1-2")]
    assert sorted(m.turn.seq or 0 for m in got) == [0, 1, 2]


async def test_a_shared_prefix_is_found_once_under_the_session_that_stores_it(
    store: SessionStore,
) -> None:
    await persist(store, header("p", turn_count=4), said("p", ["comet early"] * 4))
    branch = header("b", created_at=at(1), parent_session_id="p", fork_seq=2, turn_count=3)
    await persist(store, branch, said("b", ["comet late"], 2))
    got = await search(store, "comet")
    assert sorted(found(got)) == [
        ("b", "b-2"),
        ("p", "p-0"),
        ("p", "p-1"),
        ("p", "p-2"),
        ("p", "p-3"),
    ]
    # Searching the branch alone reports its inherited prefix under the branch.
    only = await search(store, "comet", session_ids=["b"])
    assert sorted(found(only)) == [("b", "b-2"), ("b", "p-0"), ("b", "p-1")]
    # The parent rewinds below the fork point: the branch still holds p-0 and p-1.
    await store.add_generation("p", 1, 0, 0)
    await persist(store, header("p", generation=1, turn_count=0))
    assert sorted(found(await search(store, "comet"))) == [("b", "b-2"), ("b", "p-0"), ("b", "p-1")]


async def test_search_covers_exactly_the_transcripts(store: SessionStore) -> None:
    """Over a tangle of restores and branches, a word every turn holds finds each turn of every
    transcript once, under a session whose transcript holds it at that seq."""
    await persist(store, header("p", turn_count=5), said("p0", ["kayak"] * 5))
    await store.add_generation("p", 1, 0, 2)
    await persist(store, header("p", generation=1, turn_count=4), said("p1", ["kayak"] * 2, 2))
    b = header("b", created_at=at(1), parent_session_id="p", parent_generation=1, fork_seq=3)
    await persist(store, b.model_copy(update={"turn_count": 5}), said("b0", ["kayak"] * 2, 3))
    await store.add_generation("b", 1, 0, 4)
    b1 = b.model_copy(update={"generation": 1, "turn_count": 6})
    await persist(store, b1, said("b1", ["kayak"] * 2, 4))
    c = header("c", created_at=at(2), parent_session_id="b", parent_generation=0, fork_seq=5)
    await persist(store, c.model_copy(update={"turn_count": 6}), said("c0", ["kayak"], 5))
    await persist(store, header("x", user_id="u2", turn_count=1), said("x", ["kayak"]))

    transcripts = {sid: await read_transcript(store, sid) for sid in ("p", "b", "c")}
    expected = {t.turn_id for ts in transcripts.values() for t in ts}
    got = await search(store, "kayak", limit=100)
    assert sorted(m.turn.turn_id for m in got) == sorted(expected)  # each once
    for m in got:
        at_seq = transcripts[m.session_id][m.turn.seq or 0]
        assert at_seq.turn_id == m.turn.turn_id
    owners = {m.turn.turn_id: m.session_id for m in got}
    assert owners["p0-0"] == "p" and owners["p1-2"] == "p" and owners["b0-3"] == "b"
    assert owners["b0-4"] == "c"  # b rewound past it; c, branched before, still holds it
    assert "p0-4" not in owners  # p rewound past it before b branched


async def test_store_from_url_sets_recall(tmp_path: Path) -> None:
    pg = store_from_url("postgresql://h/db?recall=true&schema=s")
    assert isinstance(pg, PostgresSessionStore)
    assert pg.recall and pg.schema == "s" and "recall" not in pg.dsn
    assert not store_from_url("postgresql://h/db").recall  # type: ignore[attr-defined]
    lite = store_from_url(f"sqlite:///{tmp_path}/x.db?recall=false")
    assert isinstance(lite, SQLiteSessionStore)
    assert not lite.recall and lite.path == f"{tmp_path}/x.db"
    assert store_from_url(f"sqlite:///{tmp_path}/y.db").recall  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="recall="):
        store_from_url("postgresql://h/db?recall=maybe")


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_without_the_index_recall_is_unavailable_until_enabled(
    backend: str, tmp_path: Path
) -> None:
    async with AsyncExitStack() as stack:
        if backend == "sqlite":

            def make(recall: bool) -> SessionStore:
                return SQLiteSessionStore(tmp_path / "late.db", recall=recall)
        else:
            dsn = await postgres_dsn_or_skip()
            schema = await stack.enter_async_context(temporary_schema(dsn))

            def make(recall: bool) -> SessionStore:
                return PostgresSessionStore(dsn, schema=schema, max_size=2, recall=recall)

        plain = make(False)
        await plain.setup()
        await persist(plain, header("s1", turn_count=1), said("a", ["an old meadow story"]))
        with pytest.raises(RecallUnavailableError):
            await search(plain, "meadow")
        await plain.close()
        # Turned on later: the turns already stored are indexed too.
        indexed = make(True)
        await indexed.setup()
        await indexed.setup()  # idempotent
        try:
            assert found(await search(indexed, "meadow")) == [("s1", "a-0")]
            await persist(indexed, header("s1", turn_count=2), said("a", ["meadow again"], 1))
            assert len(await search(indexed, "meadow")) == 2
        finally:
            await indexed.close()
