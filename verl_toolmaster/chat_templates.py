"""ChatML chat templates that render tools, tool calls and tool results the way Qwen2.5-Instruct's template does.

verl's agent loop and ``sft_trainer`` both tokenize through the tokenizer's chat template, so a model whose own
template ignores ``tools`` (SmolLM2) needs one that renders them. :func:`chatml_tool_template` writes Qwen2.5's
tool-calling template with two choices:

* ``default_system``: the system text used when the conversation has none;
* ``newline``: where the ``\\n`` between two turns goes. ``"after"`` is Qwen's layout (``<|im_end|>\\n`` closes a
  turn). ``"before"`` opens every turn but the first with it (``\\n<|im_start|>``) and so ends the generation
  prompt in ``\\n<|im_start|>assistant\\n``. A full conversation tokenizes identically either way; the difference is
  which turn owns the newline. verl's Qwen token builder (``model_type`` qwen2/qwen3) inserts the newline a
  model never generates after its ``<|im_end|>``; every other model type gets verl's generic builder, which
  appends only what the template renders after a turn. With ``"before"`` that suffix starts with the newline,
  so rollouts see exactly the tokens SFT trained on, and SFT trains the assistant turn to end at ``<|im_end|>``.
"""

from __future__ import annotations

QWEN_DEFAULT_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."

_TOOLS_PREAMBLE = (
    '"\\n\\n# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\n'
    'You are provided with function signatures within <tools></tools> XML tags:\\n<tools>"'
)
_TOOLS_POSTAMBLE = (
    '"\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments '
    'within <tool_call></tool_call> XML tags:\\n<tool_call>\\n{\\"name\\": <function-name>, \\"arguments\\": '
    '<args-json-object>}\\n</tool_call><|im_end|>'
)


def chatml_tool_template(default_system: str = QWEN_DEFAULT_SYSTEM, newline: str = "after") -> str:
    """Qwen2.5-Instruct's tool-calling chat template, with ``default_system`` and the turn ``newline`` placement
    (``"after"``: Qwen's own text; ``"before"``: see the module docstring)."""
    if newline not in ("after", "before"):
        raise ValueError(f"newline must be 'after' or 'before', got {newline!r}")
    if "'" in default_system or "\\" in default_system:
        raise ValueError("default_system must not contain quotes or backslashes (it is embedded in Jinja)")
    after = "\\n" if newline == "after" else ""
    # "before": a turn that is not the very first of the rendered text opens with the newline.
    nl = "" if newline == "after" else "\\n"
    return (
        "{%- if tools %}\n"
        "    {{- '<|im_start|>system\\n' }}\n"
        "    {%- if messages[0]['role'] == 'system' %}\n"
        "        {{- messages[0]['content'] }}\n"
        "    {%- else %}\n"
        f"        {{{{- '{default_system}' }}}}\n"
        "    {%- endif %}\n"
        f"    {{{{- {_TOOLS_PREAMBLE} }}}}\n"
        "    {%- for tool in tools %}\n"
        '        {{- "\\n" }}\n'
        "        {{- tool | tojson }}\n"
        "    {%- endfor %}\n"
        f'    {{{{- {_TOOLS_POSTAMBLE}{after}" }}}}\n'
        "{%- else %}\n"
        "    {%- if messages[0]['role'] == 'system' %}\n"
        f"        {{{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>{after}' }}}}\n"
        "    {%- else %}\n"
        f"        {{{{- '<|im_start|>system\\n{default_system}<|im_end|>{after}' }}}}\n"
        "    {%- endif %}\n"
        "{%- endif %}\n"
        "{%- for message in messages %}\n"
        '    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or '
        '(message.role == "assistant" and not message.tool_calls) %}\n'
        f"        {{{{- '{nl}<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '{after}' }}}}\n"
        '    {%- elif message.role == "assistant" %}\n'
        f"        {{{{- '{nl}<|im_start|>' + message.role }}}}\n"
        "        {%- if message.content %}\n"
        "            {{- '\\n' + message.content }}\n"
        "        {%- endif %}\n"
        "        {%- for tool_call in message.tool_calls %}\n"
        "            {%- if tool_call.function is defined %}\n"
        "                {%- set tool_call = tool_call.function %}\n"
        "            {%- endif %}\n"
        "            {{- '\\n<tool_call>\\n{\"name\": \"' }}\n"
        "            {{- tool_call.name }}\n"
        "            {{- '\", \"arguments\": ' }}\n"
        "            {{- tool_call.arguments | tojson }}\n"
        "            {{- '}\\n</tool_call>' }}\n"
        "        {%- endfor %}\n"
        f"        {{{{- '<|im_end|>{after}' }}}}\n"
        '    {%- elif message.role == "tool" %}\n'
        '        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}\n'
        f"            {{{{- '{nl}<|im_start|>user' }}}}\n"
        "        {%- endif %}\n"
        "        {{- '\\n<tool_response>\\n' }}\n"
        "        {{- message.content }}\n"
        "        {{- '\\n</tool_response>' }}\n"
        '        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}\n'
        f"            {{{{- '<|im_end|>{after}' }}}}\n"
        "        {%- endif %}\n"
        "    {%- endif %}\n"
        "{%- endfor %}\n"
        "{%- if add_generation_prompt %}\n"
        f"    {{{{- '{nl}<|im_start|>assistant\\n' }}}}\n"
        "{%- endif %}\n"
    )
