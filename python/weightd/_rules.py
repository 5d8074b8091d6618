r"""The rule vocabulary of weightctl and the C++ client, as keyword arguments.

    strip_prefix="module."            str or list, applied in order
    add_prefix="backbone."            str or list
    rename=[(r"^fc\.", "head.")]      RE2 pattern and replacement (\1 groups,
                                      every match replaced, like re.sub)
    include=..., exclude=...          RE2, partial match on source names
    ignore_missing=..., ignore_unexpected=...
    auto_prefix=True                  infer module./_orig_mod./model./... prefixes
    on_shape_mismatch="error"|"skip"  strict=True|False, allow_empty=False

Rules apply to every source name in this order: strip_prefix, add_prefix,
rename. The server evaluates them (RE2), so a match means what it means for
weightctl and the C++ client.
"""
import re

from weightd._errors import InvalidArgument
from weightd._proto import pb

RULE_KEYS = ("strip_prefix", "add_prefix", "rename", "include", "exclude", "ignore_missing",
             "ignore_unexpected", "auto_prefix")

_SHAPE_POLICIES = {"error": 1, "skip": 2}  # ShapePolicy values


def _strings(value, what):
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    out = list(value)
    for v in out:
        if not isinstance(v, str):
            raise InvalidArgument("%s: expected a string or a list of strings, got %r" % (what, v))
    return out


def _pairs(value):
    if value is None:
        return []
    items = value.items() if isinstance(value, dict) else value
    out = []
    for item in items:
        if (not isinstance(item, (tuple, list)) or len(item) != 2 or
                not all(isinstance(x, str) for x in item)):
            raise InvalidArgument("rename: expected (pattern, replacement) pairs, got %r" % (item,))
        out.append((item[0], item[1]))
    return out


def rule_set(strip_prefix=None, add_prefix=None, rename=None, include=None, exclude=None,
             ignore_missing=None, ignore_unexpected=None, auto_prefix=False):
    """A weightd.v1.RuleSet from the keyword vocabulary."""
    out = pb.RuleSet()
    for p in _strings(strip_prefix, "strip_prefix"):
        out.rules.add(strip_prefix=p)
    for p in _strings(add_prefix, "add_prefix"):
        out.rules.add(add_prefix=p)
    for pattern, replacement in _pairs(rename):
        out.rules.add(regex=pb.RegexRule(pattern=pattern, replacement=replacement))
    out.include.extend(_strings(include, "include"))
    out.exclude.extend(_strings(exclude, "exclude"))
    out.ignore_missing.extend(_strings(ignore_missing, "ignore_missing"))
    out.ignore_unexpected.extend(_strings(ignore_unexpected, "ignore_unexpected"))
    out.auto_prefix = bool(auto_prefix)
    return out


def match_options(strict=True, on_shape_mismatch="error", allow_empty=False):
    """A weightd.v1.MatchOptions; strictness is always explicit.

    The legacy `strict` bool carries the same value, for servers that predate
    `strictness` (they ignore it and read the bool).
    """
    if on_shape_mismatch not in _SHAPE_POLICIES:
        raise InvalidArgument("on_shape_mismatch: expected \"error\" or \"skip\", got %r" %
                              (on_shape_mismatch,))
    return pb.MatchOptions(
        on_shape_mismatch=_SHAPE_POLICIES[on_shape_mismatch],
        strict=bool(strict),
        strictness=pb.STRICTNESS_STRICT if strict else pb.STRICTNESS_LENIENT,
        allow_empty=bool(allow_empty))


def _python_replacement(replacement):
    # RE2 writes \0 for the whole match; Python's template says \g<0>.
    return re.sub(r"\\(\\|[0-9])",
                  lambda m: "\\\\" if m.group(1) == "\\" else "\\g<%s>" % m.group(1), replacement)


def local_names(names, rules):
    """Source names -> renamed names, for the tensors `rules` selects.

    Python's re stands in for RE2 here only to *propose* a target to the
    server; the server applies the rules itself and a strict match refuses
    any disagreement, so a pattern the two engines read differently fails
    loudly instead of renaming differently.
    """
    try:
        include = [re.compile(p) for p in rules.include]
        exclude = [re.compile(p) for p in rules.exclude]
        steps = []
        for r in rules.rules:
            kind = r.WhichOneof("kind")
            if kind == "regex":
                steps.append((kind, re.compile(r.regex.pattern),
                              _python_replacement(r.regex.replacement)))
            else:
                steps.append((kind, getattr(r, kind), None))
    except re.error as e:
        raise InvalidArgument("bad regular expression: %s" % e) from e
    out = []
    for name in names:
        if include and not any(p.search(name) for p in include):
            continue
        if any(p.search(name) for p in exclude):
            continue
        new = name
        for kind, arg, replacement in steps:
            if kind == "strip_prefix":
                new = new[len(arg):] if new.startswith(arg) else new
            elif kind == "add_prefix":
                new = arg + new
            elif kind == "rename":
                new = arg.to if new == getattr(arg, "from") else new
            else:
                new = arg.sub(replacement, new)
        out.append((name, new))
    return out
