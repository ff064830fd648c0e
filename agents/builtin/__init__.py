"""Built-in agents that do real work without a network: echo, sleep, fail, summarize, llm."""

from agents.builtin import basic, llm, summarize

__all__ = ["basic", "llm", "summarize"]
