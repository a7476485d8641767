"""The chat template: how a list of messages becomes one prompt for a base (not chat-tuned) model.

ParrotLM models are base language models: they continue text. A conversation is therefore
written as a plain-text transcript that the model continues, the way a story would be:

    <system message, if any>

    User: <first user message>
    Assistant: <first reply>
    User: <second user message>
    Assistant:

- System (and `developer`) messages come first, as plain lines followed by a blank line.
- Each user turn is `User: <text>` and each assistant turn `Assistant: <text>`, one per line
  (a message's own newlines are kept).
- The prompt ends with `Assistant:`, so the model's continuation is the reply. The space the
  model usually writes after the colon is not part of the reply.
- The reply ends at end-of-text, or where the model starts a new turn: `CHAT_STOP`
  (`"\\nUser:"` and `"\\nAssistant:"`) are stop strings, trimmed from the reply.

A model trained only on stories has never seen such a transcript, so its replies will read like
stories; the template only gives it a shape to continue.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

USER = "User"
ASSISTANT = "Assistant"
CHAT_STOP = ("\nUser:", "\nAssistant:")
ROLES = {"system": None, "developer": None, "user": USER, "assistant": ASSISTANT}


class TemplateError(ValueError):
    """A message list that cannot be rendered; the message is one sentence for the client."""


def message_text(content: Any) -> str:
    """A message's text: a string, or OpenAI's list of parts ({"type": "text", "text": ...})."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, dict) and part.get("type") == "text":
                texts.append(str(part.get("text", "")))
            else:
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise TemplateError(f"Only text message parts are supported, not {kind!r}.")
        return "".join(texts)
    raise TemplateError("A message's content must be a string or a list of text parts.")


def render_chat(messages: Sequence[dict[str, Any]]) -> str:
    """The transcript prompt for `messages` ({"role", "content"} dicts), ending in `Assistant:`.

    Raises TemplateError for no messages, an unknown role, or no user/assistant turn.
    """
    if not messages:
        raise TemplateError("messages is empty; send at least one user message.")
    system: list[str] = []
    turns: list[str] = []
    for i, message in enumerate(messages):
        role = message.get("role")
        if role not in ROLES:
            raise TemplateError(f"messages[{i}] has role {role!r}; use system, user or assistant.")
        text = message_text(message.get("content"))
        if ROLES[role] is None:
            if text.strip():
                system.append(text.strip())
        else:
            turns.append(f"{ROLES[role]}: {text.strip()}")
    if not turns:
        raise TemplateError("messages holds no user or assistant message to reply to.")
    if all(turn.endswith(": ") for turn in turns) and not system:
        raise TemplateError("Every message is empty; send a user message with some text.")
    head = "\n".join(system) + "\n\n" if system else ""
    return head + "\n".join(turns) + f"\n{ASSISTANT}:"
