"""An agent that calls an OpenAI-compatible chat-completions endpoint when configured.

    OPENAI_BASE_URL=http://localhost:11434/v1 OPENAI_MODEL=llama3 \
    DURABLE_SESSIONS_AGENTS=examples.openai_agent:agents durable-sessions worker

Without ``OPENAI_BASE_URL`` it registers nothing. The HTTP call runs in the agent-turn activity,
so timeouts and retries are Temporal's; a failing endpoint becomes a recorded failure turn.
"""

from __future__ import annotations

import os

import httpx

from durable_sessions.agents import AgentContext


class OpenAICompatibleAgent:
    def __init__(
        self, name: str, base_url: str, model: str, api_key: str | None = None, system: str = ""
    ) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key = api_key
        self.system = system or f"You are {name}, one member of a team of agents."

    async def respond(self, context: AgentContext) -> str:
        messages = [{"role": "system", "content": f"{self.system} Your role: {context.role}."}]
        for turn in context.turns:
            role = "assistant" if turn.agent == self.name else "user"
            who = f"[{turn.agent}] " if turn.agent and turn.agent != self.name else ""
            messages.append({"role": role, "content": who + turn.content})
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        async with httpx.AsyncClient(timeout=60) as http:
            response = await http.post(
                f"{self.base_url}/chat/completions",
                json={"model": self.model, "messages": messages},
                headers=headers,
            )
            response.raise_for_status()
            content: str = response.json()["choices"][0]["message"]["content"]
            return content


def agents() -> list[OpenAICompatibleAgent]:
    base_url = os.environ.get("OPENAI_BASE_URL")
    if not base_url:
        return []
    return [
        OpenAICompatibleAgent(
            os.environ.get("OPENAI_AGENT_NAME", "assistant"),
            base_url,
            os.environ.get("OPENAI_MODEL", "gpt-4o-mini"),
            os.environ.get("OPENAI_API_KEY"),
        )
    ]
