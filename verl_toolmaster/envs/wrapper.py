"""Base of the environment wrappers (cache, perturbation): everything not overridden goes to the inner env."""

from __future__ import annotations

from typing import Any

from .base import ToolEnv


class EnvWrapper(ToolEnv):
    """Delegates to ``inner``; attributes it does not define (``instances``, ``client``...) resolve there too."""

    def __init__(self, inner: ToolEnv):
        super().__init__(inner.spec)
        self.inner = inner
        self.kind = inner.kind
        self.stateful = inner.stateful
        self.turn = inner.turn

    def __getattr__(self, name: str) -> Any:
        inner = self.__dict__.get("inner")
        if inner is None:
            raise AttributeError(name)
        return getattr(inner, name)

    def unwrap(self) -> ToolEnv:
        """The innermost (kind) environment."""
        env: ToolEnv = self
        while isinstance(env, EnvWrapper):
            env = env.inner
        return env

    def tools(self) -> list[dict[str, Any]]:
        return self.inner.tools()

    def set_turn(self, turn: int) -> None:
        self.turn = turn
        self.inner.set_turn(turn)

    async def close(self) -> None:
        await self.inner.close()

    def callable_names(self) -> list[str]:
        listed = set(self.inner.tool_names())
        return self.tool_names() + [n for n in self.inner.callable_names() if n not in listed]

    def canonical(self, name: str, arguments: dict[str, Any] | str) -> tuple[str, dict[str, Any] | str]:
        return self.inner.canonical(name, arguments)

    def positional_params(self, name: str) -> list[str]:
        return self.inner.positional_params(name)

    def fingerprint(self, name: str) -> str:
        return self.inner.fingerprint(name)
