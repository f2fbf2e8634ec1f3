"""``ToolSFTDataset``: verl's ``MultiTurnSFTDataset`` reading our default SFT parquet layout.

The stored rows keep tool-call ``arguments`` and the ``tools`` list as JSON strings (parquet would otherwise
merge every row's schema keys into every tool; see :mod:`verl_toolmaster.protocol.messages`). This subclass decodes
them, so verl tokenizes exactly what its documentation asks for: argument dicts and nested tool objects.
Select it with ``data.custom_cls.path=pkg://verl_toolmaster.data.sft_dataset data.custom_cls.name=ToolSFTDataset``.
"""

from __future__ import annotations

import json
from typing import Any


from verl_toolmaster import compat

from ..protocol.messages import decode_messages


def _decode_tools(tools: Any) -> Any:
    return json.loads(tools) if isinstance(tools, str) else tools


class ToolSFTDataset(compat.MultiTurnSFTDataset):
    """``MultiTurnSFTDataset`` whose ``messages``/``tools`` may hold JSON-string arguments and tool lists."""

    def _read_files_and_process(self) -> None:
        super()._read_files_and_process()
        self.messages = [decode_messages(m) for m in self.messages]
        if self.tools is not None:
            self.tools = [_decode_tools(t) for t in self.tools]

    def _build_messages(self, example: dict) -> list:
        raw = compat.convert_nested_value_to_list_recursive(example[self.messages_key])
        return super()._build_messages({**example, self.messages_key: decode_messages(raw)})
