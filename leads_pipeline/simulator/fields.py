"""The Graph API ``fields`` syntax: ``a,b.limit(5){c,d},e`` (field expansion with modifiers)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class FieldSpec:
    name: str
    modifiers: dict[str, str] = field(default_factory=dict)
    sub: list[FieldSpec] | None = None
    raw_sub: str | None = None  # the text between the braces, for building `next` URLs of nested edges

    @property
    def limit(self) -> int | None:
        raw = self.modifiers.get("limit")
        if raw is None:
            return None
        try:
            return int(raw)
        except ValueError:
            raise FieldsSyntaxError(f"limit({raw}) is not an integer") from None


class FieldsSyntaxError(ValueError):
    pass


def _is_name_char(ch: str) -> bool:
    return ch.isalnum() or ch in "_"


def parse_fields(text: str) -> list[FieldSpec]:
    specs, pos = _parse_list(text, 0, top=True)
    if pos != len(text):
        raise FieldsSyntaxError(f'Expected end of string instead of "{text[pos]}" at character {pos}')
    return specs


def _parse_list(text: str, pos: int, top: bool) -> tuple[list[FieldSpec], int]:
    specs: list[FieldSpec] = []
    n = len(text)
    while True:
        while pos < n and text[pos] in " \t\n":
            pos += 1
        if pos < n and text[pos] == ",":  # tolerate empty items ("a,,b", trailing comma)
            pos += 1
            continue
        if pos >= n or text[pos] == "}":
            break
        start = pos
        while pos < n and _is_name_char(text[pos]):
            pos += 1
        if pos == start:
            raise FieldsSyntaxError(f'Syntax error "Expected name." at character {pos}: {text}')
        spec = FieldSpec(text[start:pos])
        while pos < n and text[pos] == ".":
            pos += 1
            mstart = pos
            while pos < n and _is_name_char(text[pos]):
                pos += 1
            mod = text[mstart:pos]
            if not mod or pos >= n or text[pos] != "(":
                raise FieldsSyntaxError(f'Syntax error "Expected "(" after modifier." at character {pos}: {text}')
            depth, pos, astart = 1, pos + 1, pos + 1
            while pos < n and depth:
                depth += {"(": 1, ")": -1}.get(text[pos], 0)
                pos += 1
            if depth:
                raise FieldsSyntaxError(f'Syntax error "Unbalanced parentheses." in {text}')
            spec.modifiers[mod] = text[astart:pos - 1]
        if pos < n and text[pos] == "{":
            sub_start = pos + 1
            sub, pos = _parse_list(text, sub_start, top=False)
            if pos >= n or text[pos] != "}":
                raise FieldsSyntaxError(f'Syntax error "Expected "}}"." in {text}')
            spec.sub = sub
            spec.raw_sub = text[sub_start:pos]
            pos += 1
        specs.append(spec)
        while pos < n and text[pos] in " \t\n":
            pos += 1
        if pos < n and text[pos] == ",":
            pos += 1
            continue
        break
    if not top and (pos >= n or text[pos] != "}"):
        raise FieldsSyntaxError(f'Syntax error "Expected "}}"." in {text}')
    return specs, pos
