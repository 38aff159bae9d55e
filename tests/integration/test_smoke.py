from durable_sessions.models import SessionStatus, SessionTurn
from tests.integration.conftest import Stack


async def test_create_add_close(stack: Stack) -> None:
    m = stack.manager
    st = await m.create("u1", {"topic": "x"})
    assert st.status is SessionStatus.ACTIVE
    t = await m.add_turn(st.session_id, SessionTurn(role="user", content="hello"))
    assert t.seq == 0
    t2 = await m.add_turn(st.session_id, SessionTurn(role="assistant", content="hi there"))
    assert t2.seq == 1
    h = await m.history(st.session_id)
    assert [x.content for x in h] == ["hello", "hi there"]
    closed = await m.close(st.session_id)
    assert closed.status is SessionStatus.CLOSED
    h = await m.history(st.session_id)
    assert [x.content for x in h] == ["hello", "hi there"]
