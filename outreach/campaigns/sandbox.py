"""The template sandbox: Jinja2's immutable sandbox, bounded in time, size and numbers.

A campaign template is text an operator typed, rendered by the sending engine for every
message. Jinja2's :class:`ImmutableSandboxedEnvironment` already refuses Python internals and
any change to the data it is given (``{{ lead.pop('email') }}``); on top of it:

- a render stops after :data:`RENDER_SECONDS` (a loop of loops, a macro that keeps calling
  itself): every loop turn and macro call looks at the clock;
- the output stops at :data:`MAX_OUTPUT_CHARS`, and no value on the way may grow past it
  (``'a' * 300000000``, a string doubled in a loop, ``'x'.ljust(10**9)``);
- ``range`` gives at most :data:`MAX_RANGE` numbers and ``**`` refuses results of more than
  :data:`MAX_POWER_BITS` bits.

Whatever goes wrong inside a render (``{{ 1/0 }}``, a recursion, a limit) comes out as a
:class:`TemplateFailure` with one readable line, never as a traceback.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from contextvars import ContextVar
from typing import Any

from jinja2 import Template, TemplateError, nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import Namespace

# A real email renders in well under a millisecond; two seconds is a template gone wrong.
RENDER_SECONDS = 2.0
# Gmail clips a message past 102 KB: a million characters is never an email, only a mistake.
MAX_OUTPUT_CHARS = 1_000_000
# A loop in an email lists a few items; Jinja2's own sandbox allows 100,000.
MAX_RANGE = 10_000
# 2 ** 4096 is already a 1,234-digit number; a larger power only burns CPU.
MAX_POWER_BITS = 4096
# When the render under way must end (time.monotonic()); no render under way: never.
_deadline: ContextVar[float] = ContextVar("template_deadline", default=float("inf"))
# A printf width or precision ("%300000000s"), or a str.format one ("{:>300000000}").
_FORMAT_NUMBER = re.compile(r"%[#0 +-]*(\d+)|%[#0 +-]*\d*\.(\d+)|\{[^{}]*?(\d{7,})[^{}]*\}")


class TemplateFailure(Exception):
    """A template could not be rendered; ``str()`` is one line saying why, ``line`` the line
    of the template where it happened (when known)."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


class LimitExceeded(TemplateError):
    """A sandbox limit was reached (a TemplateError, so Jinja2 treats it as its own)."""


def _check_size(value: Any) -> None:
    if isinstance(value, str | bytes | list | tuple) and len(value) > MAX_OUTPUT_CHARS:
        raise LimitExceeded(f"a value longer than {MAX_OUTPUT_CHARS:,} characters")


def _check_number(value: Any) -> None:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_OUTPUT_CHARS:
        raise LimitExceeded(f"the number {value} is too large for a template")


def _check_format(text: str) -> None:
    for match in _FORMAT_NUMBER.finditer(text):
        numbers = [int(g) for g in match.groups() if g]
        if any(n > MAX_OUTPUT_CHARS for n in numbers):
            raise LimitExceeded(f"format width {max(numbers)} is too large for a template")


def _check_replace(text: Any, old: Any, new: Any) -> None:
    """``text.replace(old, new)`` would not outgrow the limit (checked before it allocates)."""
    if isinstance(text, str) and isinstance(old, str) and isinstance(new, str):
        grows = len(new) - len(old)
        if grows > 0 and old and len(text) + text.count(old) * grows > MAX_OUTPUT_CHARS:
            raise LimitExceeded(f"a value longer than {MAX_OUTPUT_CHARS:,} characters")


def _check_arguments(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    for value in (*args, *kwargs.values()):
        _check_number(value)
        _check_size(value)


def _bounded_filter(func: Callable[..., Any]) -> Callable[..., Any]:
    """A filter whose numeric arguments are checked first (``center(10**9)``, ``indent``)."""

    @functools.wraps(func)  # keeps Jinja2's pass_context / pass_environment marks
    def bounded(*args: Any, **kwargs: Any) -> Any:
        _check_arguments(args, kwargs)
        if func.__name__ == "do_format" and args and isinstance(args[0], str):
            _check_format(args[0])
        elif func.__name__ == "do_replace" and len(args) >= 4:
            _check_replace(*args[1:4])  # (eval_ctx, text, old, new)
        result = func(*args, **kwargs)
        _check_size(result)  # 'a' | replace('a', 'aaaa') ten times over
        return result

    return bounded


def _range(*args: int) -> range:
    numbers = range(*args)
    if len(numbers) > MAX_RANGE:
        raise LimitExceeded(f"range() of more than {MAX_RANGE:,} numbers")
    return numbers


class _Namespace(Namespace):
    """``namespace()``: the one place a template can keep a value across loop turns, so the
    one place a value could be doubled turn after turn."""

    def __setitem__(self, name: str, value: Any) -> None:
        _check_size(value)
        super().__setitem__(name, value)


class _ClockedCodeGenerator(CodeGenerator):
    """Compiles a call to ``environment.tick()`` at the top of every block: each turn of a
    loop and each call of a macro looks at the clock. A template can only run long by
    looping or recursing, so this bounds its time at the cost of one cheap call per turn
    (tracing every line with sys.settrace made a render four times slower)."""

    def blockvisit(self, nodes: Iterable[nodes.Node], frame: Frame) -> None:
        self.writeline("environment.tick()")
        super().blockvisit(nodes, frame)


class Sandbox(ImmutableSandboxedEnvironment):
    """Jinja2's immutable sandbox with the limits above (see the module docstring)."""

    code_generator_class = _ClockedCodeGenerator
    intercepted_binops = frozenset({"*", "**", "+", "%"})

    @staticmethod
    def tick() -> None:
        if time.monotonic() > _deadline.get():
            raise LimitExceeded(f"took longer than {RENDER_SECONDS:g} s to render")

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.globals["range"] = _range
        self.globals["namespace"] = _Namespace
        self.filters = {name: _bounded_filter(f) for name, f in self.filters.items()}

    def make_globals(self, d: MutableMapping[str, Any] | None) -> MutableMapping[str, Any]:
        """A template's globals as one flat dict, not Jinja2's ChainMap over the
        environment's: every render copies them into its context, and copying a ChainMap
        was more than half of a short render (7.6 -> 3.1 us). Nothing changes a sandbox's
        globals after ``__init__``, so the copy never goes stale."""
        return {**self.globals, **(d or {})}

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, str | bytes | list | tuple) and isinstance(times, int):
                    if len(seq) * times > MAX_OUTPUT_CHARS:
                        raise LimitExceeded(f"a value longer than {MAX_OUTPUT_CHARS:,} characters")
        elif operator == "+" and isinstance(left, str | list | tuple):
            if isinstance(right, str | list | tuple) and len(left) + len(right) > MAX_OUTPUT_CHARS:
                raise LimitExceeded(f"a value longer than {MAX_OUTPUT_CHARS:,} characters")
        elif operator == "**" and isinstance(left, int) and isinstance(right, int):
            if abs(left) > 1 and right > 0 and left.bit_length() * right > MAX_POWER_BITS:
                raise LimitExceeded(f"{left} ** {right} is too large for a template")
        elif operator == "%" and isinstance(left, str):
            _check_format(left)
            _check_arguments(right if isinstance(right, tuple) else (right,), {})
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _check_arguments(args, kwargs)
        bound_to = getattr(__obj, "__self__", None)
        if isinstance(bound_to, str):
            _check_format(bound_to)  # "{:>300000000}".format(...)
            if getattr(__obj, "__name__", "") == "replace" and len(args) >= 2:
                _check_replace(bound_to, args[0], args[1])
        result = super().call(__context, __obj, *args, **kwargs)
        _check_size(result)
        return result


def render(template: Template, context: Mapping[str, Any]) -> str:
    """``template`` rendered with ``context`` within the limits; raises TemplateFailure.

    ``template`` must come from a :class:`Sandbox` (its blocks look at the clock)."""
    token = _deadline.set(time.monotonic() + RENDER_SECONDS)
    try:
        return _collect(template.generate(context))
    except TemplateError as exc:
        message = exc.message or exc.__class__.__name__
        raise TemplateFailure(message, _line_of(exc)) from None
    except RecursionError as exc:
        message = "a macro calls itself without end (recursion too deep)"
        raise TemplateFailure(message, _line_of(exc)) from None
    except Exception as exc:
        # {{ 1/0 }}, a filter given the wrong type...: the template's fault, said in one line.
        raise TemplateFailure(f"{type(exc).__name__}: {exc}", _line_of(exc)) from None
    finally:
        _deadline.reset(token)


def _line_of(exc: BaseException) -> int | None:
    """The template line of the innermost template frame in ``exc``'s traceback (Jinja2
    rewrites template frames to carry the template's own line numbers)."""
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _collect(chunks: Iterator[str]) -> str:
    out: list[str] = []
    size = 0
    for chunk in chunks:
        size += len(chunk)
        if size > MAX_OUTPUT_CHARS:
            raise LimitExceeded(f"renders more than {MAX_OUTPUT_CHARS:,} characters")
        out.append(chunk)
    return "".join(out)
