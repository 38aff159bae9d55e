"""durable-sessions: AI conversation sessions that never lose a turn, on Temporal."""
