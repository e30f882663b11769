"""Label and field selectors, parsed as kube-apiserver parses them, with its error messages.

Label selectors follow the grammar and messages of k8s.io/apimachinery pkg/labels/selector.go
(Lexer, Parser.parse, parseRequirement, validateLabelKey/Value); field selectors follow
pkg/fields/selector.go (parseSelector) and the per-kind field label conversion functions of
pkg/apis/{core,apps,...}/v1/conversion.go ("field label not supported: X"). A selector the
real server refuses is an `ApiError(400, "BadRequest", ...)` here too.
"""

from __future__ import annotations

import re
from typing import Any

from .apierror import ApiError

Requirement = tuple[str, str, set[str]]  # key, operator, values

_SPECIAL = set("=!(),><")
_TOKENS = {
    ")": "CLOSE",
    ",": "COMMA",
    "!": "NOT",
    "==": "DEQ",
    "=": "EQ",
    ">": "GT",
    "in": "IN",
    "<": "LT",
    "!=": "NEQ",
    "notin": "NOTIN",
    "(": "OPEN",
}
_OPS = {
    "IN": "in",
    "EQ": "=",
    "DEQ": "=",
    "GT": "gt",
    "LT": "lt",
    "NOTIN": "notin",
    "NEQ": "!=",
}
_BINARY = "in, notin, =, ==, !=, gt, lt"

_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?"
_DNS1123_SUB = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
_NAME_MSG = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start "
    "and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', "
    "regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' "
    "or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "
    "'my_value',  or '12345', regex used for validation is "
    "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)


def _bad(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def _lex(text: str) -> list[tuple[str, str]]:
    items, i, n = [], 0, len(text)
    while True:
        while i < n and text[i] in " \t\r\n":
            i += 1
        if i >= n:
            items.append(("END", ""))
            return items
        if text[i] in _SPECIAL:
            buf, last = "", None
            while i < n and text[i] in _SPECIAL:
                if buf + text[i] in _TOKENS:
                    buf += text[i]
                    last = (_TOKENS[buf], buf)
                    i += 1
                elif last is not None:
                    break
                else:
                    buf += text[i]
                    i += 1
            items.append(last or ("ERROR", f"error expected: keyword found '{buf}'"))
        else:
            start = i
            while i < n and text[i] not in _SPECIAL and text[i] not in " \t\r\n":
                i += 1
            word = text[start:i]
            items.append((_TOKENS.get(word, "ID") if word in ("in", "notin") else "ID", word))


def _key_errors(key: str) -> str | None:
    prefix, _, name = key.rpartition("/")
    errs = []
    if key.count("/") > 1:
        errs.append(
            "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and "
            "must start and end with an alphanumeric character (e.g. 'MyName',  or "
            "'my.name',  or '123-abc', regex used for validation is "
            "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain "
            "prefix and '/' (e.g. 'example.com/MyName')"
        )
        return "; ".join(errs)
    if not name:
        errs.append("name part must be non-empty")
    elif len(name) > 63:
        errs.append("name part must be no more than 63 bytes")
    elif not re.fullmatch(_NAME, name):
        errs.append(_NAME_MSG)
    if "/" in key:
        if not prefix:
            errs.append("prefix part must be non-empty")
        elif len(prefix) > 253 or not re.fullmatch(_DNS1123_SUB, prefix):
            errs.append(
                "prefix part a lowercase RFC 1123 subdomain must consist of lower case "
                "alphanumeric characters, '-' or '.', and must start and end with an "
                "alphanumeric character (e.g. 'example.com', regex used for validation is "
                "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
            )
    return "; ".join(errs) or None


def _value_errors(value: str) -> str | None:
    if len(value) > 63:
        return "must be no more than 63 bytes"
    if value and not re.fullmatch(_NAME, value):
        return _VALUE_MSG
    return None


class _Parser:
    def __init__(self, text: str):
        self.items = _lex(text)
        self.pos = 0

    def look(self, values: bool = True) -> tuple[str, str]:
        tok, lit = self.items[self.pos]
        return ("ID" if values and tok in ("IN", "NOTIN") else tok), lit

    def take(self, values: bool = True) -> tuple[str, str]:
        item = self.look(values)
        self.pos += 1
        return item

    def parse(self) -> list[Requirement]:
        reqs: list[Requirement] = []
        while True:
            tok, lit = self.look()
            if tok in ("ID", "NOT"):
                try:
                    reqs.append(self.requirement())
                except ValueError as exc:
                    raise _bad(f"unable to parse requirement: {exc}") from None
                t, lit2 = self.take()
                if t == "END":
                    return reqs
                if t == "COMMA":
                    t2, l2 = self.look()
                    if t2 not in ("ID", "NOT"):
                        raise _bad(f"found '{l2}', expected: identifier after ','")
                else:
                    raise _bad(f"found '{lit2}', expected: ',' or 'end of string'")
            elif tok == "END":
                return reqs
            else:
                raise _bad(f"found '{lit}', expected: !, identifier, or 'end of string'")

    def requirement(self) -> Requirement:
        op = None
        tok, key = self.take()
        if tok == "NOT":
            op = "!exists"
            tok, key = self.take()
        if tok != "ID":
            raise ValueError(f"found '{key}', expected: identifier")
        err = _key_errors(key)
        if err:
            raise ValueError(f'Invalid value: "{key}": {err}')
        if self.look()[0] in ("END", "COMMA"):
            return key, op or "exists", set()
        if op:  # "!key" followed by an operator
            t, lit = self.look()
            raise ValueError(f"found '{lit}', expected: {_BINARY}")
        t, lit = self.take(values=False)
        if t not in _OPS:
            raise ValueError(f"found '{lit}', expected: {_BINARY}")
        op = _OPS[t]
        values = self.values() if op in ("in", "notin") else self.exact()
        for v in values:
            err = _value_errors(v)
            if err:
                raise ValueError(f'[{key}]: Invalid value: "{v}": {err}')
        if op in ("gt", "lt") and (
            len(values) != 1 or not re.fullmatch(r"-?\d+", next(iter(values)))
        ):
            raise ValueError(
                f"values: Invalid value: {sorted(values)}: for 'Gt', 'Lt' operators, "
                "the value must be an integer"
            )
        return key, op, values

    def values(self) -> set[str]:
        tok, lit = self.take()
        if tok != "OPEN":
            raise ValueError(f"found '{lit}' expected: '('")
        tok, lit = self.look()
        if tok == "CLOSE":
            self.take()
            return {""}
        if tok not in ("ID", "COMMA"):
            raise ValueError(f"found '{lit}', expected: ',', ')' or identifier")
        out: set[str] = set()
        while True:
            t, word = self.take()
            if t == "ID":
                out.add(word)
                t2, l2 = self.look()
                if t2 == "COMMA":
                    continue
                if t2 == "CLOSE":
                    break
                raise ValueError(f"found '{l2}', expected: ',' or ')'")
            if t == "COMMA":
                if not out:
                    out.add("")
                t2, _ = self.look()
                if t2 == "CLOSE":
                    out.add("")
                    break
                if t2 == "COMMA":
                    out.add("")
            else:
                raise ValueError(f"found '{word}', expected: ',', or identifier")
        if self.take()[0] != "CLOSE":
            raise ValueError(f"found '{lit}', expected: ')'")
        return out

    def exact(self) -> set[str]:
        tok, _ = self.look()
        if tok in ("END", "COMMA"):
            return {""}
        tok, lit = self.take()
        if tok == "ID":
            return {lit}
        raise ValueError(f"found '{lit}', expected: identifier")


def parse_labels(text: str | None) -> list[Requirement]:
    """A label selector → requirements; ApiError 400 where kube-apiserver answers 400."""
    if not text:
        return []
    return _Parser(text).parse()


def labels_match(labels: dict[str, str], reqs: list[Requirement]) -> bool:
    for key, op, values in reqs:
        have = labels.get(key)
        if op in ("=", "in"):
            ok = key in labels and have in values
        elif op in ("!=", "notin"):
            ok = key not in labels or have not in values
        elif op == "exists":
            ok = key in labels
        elif op == "!exists":
            ok = key not in labels
        else:  # gt / lt: both sides integers, else no match (upstream Requirement.Matches)
            try:
                left, right = int(have or ""), int(next(iter(values)))
            except ValueError:
                ok = False
            else:
                ok = left > right if op == "gt" else left < right
        if not ok:
            return False
    return True


def selector_matches(selector: dict, labels: dict[str, str]) -> bool:
    """A metav1.LabelSelector object against labels (LabelSelectorAsSelector: matchLabels and
    matchExpressions ANDed; an empty selector matches everything)."""
    ops = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!exists"}
    reqs: list[Requirement] = [
        (k, "=", {v}) for k, v in (selector.get("matchLabels") or {}).items()
    ]
    reqs += [
        (e["key"], ops[e["operator"]], set(e.get("values") or []))
        for e in selector.get("matchExpressions") or []
    ]
    return labels_match(labels, reqs)


# --------------------------------------------------------------------------- fields

#: Field labels each kind accepts beyond metadata.name and metadata.namespace
#: (pkg/apis/core/v1/conversion.go AddFieldLabelConversionsFor*, pkg/apis/apps/v1, ...).
FIELD_LABELS: dict[str, set[str]] = {
    "Pod": {
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "spec.hostNetwork",
        "status.phase",
        "status.podIP",
        "status.podIPs",
        "status.nominatedNodeName",
    },
    "Node": {"spec.unschedulable"},
    "Namespace": {"status.phase"},
    "ReplicaSet": {"status.replicas"},
    "Event": {
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    },
}

FieldRequirement = tuple[str, bool, str]  # path, negated, value


def _split_unescaped(text: str, sep: str) -> list[str]:
    parts, cur, escaped = [], "", False
    for ch in text:
        if escaped:
            cur += ch
            escaped = False
        elif ch == "\\":
            cur += ch
            escaped = True
        elif ch == sep:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return parts


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", r"\1", value)


def parse_fields(text: str | None, kind: str | None = None) -> list[FieldRequirement]:
    """A field selector → requirements; 400 for syntax errors and unsupported field labels."""
    if not text:
        return []
    reqs: list[FieldRequirement] = []
    for part in _split_unescaped(text, ","):
        if not part:
            continue
        for op in ("!=", "==", "="):
            if op in part:
                path, _, value = part.partition(op)
                reqs.append((path, op == "!=", _unescape(value)))
                break
        else:
            raise _bad(f"invalid selector: '{text}'; can't understand '{part}'")
    if kind is not None:
        allowed = {"metadata.name", "metadata.namespace"} | FIELD_LABELS.get(kind, set())
        for path, _, _ in reqs:
            if path not in allowed:
                raise _bad(f"field label not supported: {path}")
    return reqs


def field_value(obj: dict[str, Any], path: str) -> Any:
    if path == "source" and isinstance(obj.get("source"), dict):
        return obj["source"].get("component")
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    if path == "status.podIPs" and isinstance(cur, list):
        return ",".join(p.get("ip", "") for p in cur)
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return cur


def fields_match(obj: dict[str, Any], reqs: list[FieldRequirement]) -> bool:
    for path, negated, value in reqs:
        have = field_value(obj, path)
        have = "" if have is None else str(have)
        if (have == value) == negated:
            return False
    return True
