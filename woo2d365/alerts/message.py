"""What an alert says, independent of the channel: a subject and sections of entries.

Each channel renders the same :class:`AlertMessage`: e-mail as plain text, webhooks as one ``text``
field that both Slack and Teams incoming webhooks display (title on the first line, ``&``, ``<``
and ``>`` escaped as Slack requires and Teams' HTML-capable connector text renders, a hard line
break as two trailing spaces so Teams' Markdown keeps lines apart while Slack ignores them).
"""

from __future__ import annotations

from dataclasses import dataclass

WEBHOOK_TEXT_LIMIT = 20_000  # Slack truncates near 40k characters, Teams refuses bodies over 28 KB


@dataclass(frozen=True)
class Entry:
    """One line for people, with the exact commands that fix or inspect it."""

    text: str
    commands: tuple[str, ...] = ()


@dataclass(frozen=True)
class Section:
    """A heading that says what the entries are and what to do about them."""

    heading: str
    entries: tuple[Entry, ...]


@dataclass(frozen=True)
class AlertMessage:
    """One digest (or test alert) as every channel sends it."""

    subject: str
    sections: tuple[Section, ...]
    footer: str = ""

    def plain_text(self) -> str:
        """The e-mail body: sections with indented entries and commands."""
        blocks: list[str] = []
        for section in self.sections:
            lines = [section.heading]
            for entry in section.entries:
                lines.append(f"  - {entry.text}")
                lines.extend(f"      {command}" for command in entry.commands)
            blocks.append("\n".join(lines))
        if self.footer:
            blocks.append(f"-- \n{self.footer}")
        return "\n\n".join(blocks) + "\n"

    def chat_text(self) -> str:
        """The webhook ``text``: the subject as the first line, then the sections."""
        blocks = [_escape(self.subject)]
        for section in self.sections:
            lines = [_escape(section.heading)]
            for entry in section.entries:
                lines.append(f"- {_escape(entry.text)}")
                lines.extend(f"  `{_escape(command)}`" for command in entry.commands)
            blocks.append("  \n".join(lines))
        if self.footer:
            blocks.append(_escape(self.footer))
        text = "\n\n".join(blocks)
        if len(text) > WEBHOOK_TEXT_LIMIT:
            text = text[: WEBHOOK_TEXT_LIMIT - 40].rstrip() + "\n\n… (cut; see woo2d365 status)"
        return text


def _escape(text: str) -> str:
    """Slack's three control characters as entities (Teams renders the entities too)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
