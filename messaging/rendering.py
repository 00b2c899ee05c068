"""Templates rendered in Jinja2's sandbox: declared variables only, values as plain data.

Template sources come from apps, so they are untrusted code: the sandbox refuses attribute
tricks (``''.__class__.__mro__``), and HTML mail is autoescaped. Variable values are data,
never template source: a value of ``{{ 7*7 }}`` arrives as those characters.
"""

from __future__ import annotations

from typing import Any

from jinja2 import StrictUndefined, TemplateError, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from common.errors import ValidationFailed

MAX_VARIABLE_CHARS = 1000
MAX_SMS_CHARS = 500  # carriers split long texts; 500 is about 7 parts
MAX_TEXT_CHARS = 20_000
MAX_HTML_CHARS = 200_000

MAX_RANGE = 200  # jinja2 allows 100,000 per range(); nested loops of that would pin a worker


def _small_range(*args: int) -> range:
    result = range(*args)
    if len(result) > MAX_RANGE:
        raise OverflowError(f"range() is limited to {MAX_RANGE} items in templates")
    return result


_text = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
_html = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=True)
for _env in (_text, _html):
    _env.globals["range"] = _small_range


class TemplateUnsafe(ValidationFailed):
    code, title = "template_unsafe", "The template does what the sandbox forbids"


class BadVariables(ValidationFailed):
    code, title = "invalid_variables", "The variables do not match the template"


class ContentTooLarge(ValidationFailed):
    status, code, title = 413, "content_too_large", "The rendered content is too large"


def check_variables(declared: list[str], given: Any) -> dict[str, str]:
    """The variables as strings, exactly the declared ones.

    :raise BadVariables: not an object, missing or undeclared names, values that are not
        strings or numbers, or longer than :data:`MAX_VARIABLE_CHARS`.
    """
    if not isinstance(given, dict):
        raise BadVariables("variables must be a JSON object")
    errors: dict[str, list[str]] = {}
    for name in sorted(set(declared) - set(given)):
        errors[name] = ["missing"]
    for name in sorted(set(given) - set(declared)):
        errors[name] = ["not declared by the template"]
    values: dict[str, str] = {}
    for name in declared:
        value = given.get(name)
        if name not in given:
            continue
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            errors[name] = ["must be a string or a number"]
        elif len(str(value)) > MAX_VARIABLE_CHARS:
            errors[name] = [f"longer than {MAX_VARIABLE_CHARS} characters"]
        else:
            values[name] = str(value)
    if errors:
        raise BadVariables("the variables do not match the template", errors=errors)
    return values


def render(source: str, values: dict[str, str], *, html: bool = False, limit: int = MAX_TEXT_CHARS) -> str:
    """Render ``source`` in the sandbox.

    :raise TemplateUnsafe: the template breaks a sandbox rule or does not compile.
    :raise ContentTooLarge: the result is longer than ``limit`` characters.
    """
    env = _html if html else _text
    try:
        text = env.from_string(source).render(**values)
    except SecurityError as exc:
        raise TemplateUnsafe(f"the template was refused by the sandbox: {str(exc)[:200]}") from exc
    except (TemplateError, ArithmeticError, TypeError, ValueError, LookupError) as exc:
        # Runtime errors of template code (1/0, a range too big, a bad index): the template's fault.
        raise TemplateUnsafe(f"the template cannot be rendered: {str(exc)[:200]}") from exc
    if len(text) > limit:
        raise ContentTooLarge(f"the rendered content has {len(text)} characters; at most {limit}")
    return text


MAX_LOOP_DEPTH = 2  # with MAX_RANGE, at most 40,000 iterations per render


def _loop_depth(node: nodes.Node) -> int:
    inner = max((_loop_depth(child) for child in node.iter_child_nodes()), default=0)
    return inner + 1 if isinstance(node, nodes.For) else inner


def check_source(source: str, declared: list[str], *, html: bool = False, limit: int = MAX_TEXT_CHARS) -> None:
    """A template is accepted only if it renders with sample values of its declared variables
    and nests loops at most :data:`MAX_LOOP_DEPTH` deep.

    :raise TemplateUnsafe: :raise ContentTooLarge:
    """
    try:
        depth = _loop_depth(_text.parse(source))
    except TemplateError as exc:
        raise TemplateUnsafe(f"the template does not compile: {str(exc)[:200]}") from exc
    if depth > MAX_LOOP_DEPTH:
        raise TemplateUnsafe(f"loops nest {depth} deep; at most {MAX_LOOP_DEPTH}")
    render(source, {name: "x" for name in declared}, html=html, limit=limit)
