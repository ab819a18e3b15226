"""Griffe extensions for the API reference (mkdocs.yml, mkdocstrings' ``extensions``): they
teach Griffe, which reads the source without importing it, two conventions of this code base.
Nothing in the source changes.

``FieldDocs``: class fields are documented

- by the comment lines right above them (the model configs)::

      # Size of the code z.
      latent_dim: int = 16

- or by the help text of ``_option(default, "help", ...)`` (``TrainingConfig``), the same text
  the command line's ``--help`` shows; the field's shown default (and the dataclass
  signature's) is then the default the call passes, not the call.

Only fields without a docstring of their own get one.

``LazyExports``: ``aevae``, ``aevae.study`` and ``aevae.training`` export some names through a
module ``__getattr__`` (PEP 562), which Griffe cannot follow, so ``aevae.make`` or
``aevae.study.run_study`` would not exist for it and a cross-reference such as
``[make][aevae.make]`` would find nothing. The extension adds each such name to its module as
an alias of the object it loads, read from the two forms the code uses:

- a module-level ``_NAMES = {"name": "submodule", ...}`` dict that ``__getattr__`` looks up;
- ``from .module import Name`` statements inside ``__getattr__``.
"""

from __future__ import annotations

import ast

from griffe import (
    Alias,
    Attribute,
    Class,
    Docstring,
    Extension,
    Module,
    Visitor,
    safe_get_expression,
)

# --- FieldDocs -----------------------------------------------------------------------------


def _option_call(node: ast.AST) -> ast.Call | None:
    """The ``_option(...)`` call assigned to a field, or None."""
    value = getattr(node, "value", None)
    if not isinstance(value, ast.Call):
        return None
    name = getattr(value.func, "id", None) or getattr(value.func, "attr", None)
    return value if name == "_option" else None


def _option_help(call: ast.Call) -> str | None:
    candidates = call.args[1:2] + [keyword.value for keyword in call.keywords
                                   if keyword.arg == "help"]
    for candidate in candidates:
        if isinstance(candidate, ast.Constant) and isinstance(candidate.value, str):
            return candidate.value
    return None


def _comment_above(lines: list[str], lineno: int) -> tuple[str, int] | None:
    """The block of ``#`` lines directly above line ``lineno`` (1-based), and its first line."""
    index = lineno - 2
    comment: list[str] = []
    while index >= 0 and lines[index].lstrip().startswith("#"):
        comment.insert(0, lines[index].strip().lstrip("#").strip())
        index -= 1
    if not comment:
        return None
    return " ".join(part for part in comment if part), index + 2


class FieldDocs(Extension):
    def on_attribute_instance(self, *, node, attr: Attribute, agent, **kwargs) -> None:
        if attr.docstring is not None or not isinstance(attr.parent, Class):
            return
        if not isinstance(node, ast.AST) or not isinstance(agent, Visitor):
            return
        call = _option_call(node)
        if call is not None and call.args:
            default = safe_get_expression(call.args[0], parent=attr.parent)
            if default is not None:
                attr.value = default
        help_text = _option_help(call) if call is not None else None
        if help_text is not None:
            text = help_text[:1].upper() + help_text[1:]
            text, lineno = (text if text.endswith((".", "?", "!")) else text + "."), attr.lineno
        else:
            found = _comment_above(agent.code.splitlines(), attr.lineno or 0)
            if found is None:
                return
            text, lineno = found
        attr.docstring = Docstring(text, lineno=lineno, parent=attr)


# --- LazyExports ---------------------------------------------------------------------------


def _absolute(module: Module, relative: str, level: int) -> str:
    """The dotted path of ``from {'.' * level}{relative} import ...`` inside ``module``."""
    package = module.path if module.is_package else module.path.rsplit(".", 1)[0]
    for _ in range(level - 1):
        package = package.rsplit(".", 1)[0]
    return f"{package}.{relative}" if relative else package


def _lazy_targets(node: ast.Module, module: Module) -> dict[str, str]:
    """Name -> the path of the object the module's ``__getattr__`` returns for it."""
    targets: dict[str, str] = {}
    getattr_function = None
    for statement in node.body:
        if isinstance(statement, ast.FunctionDef) and statement.name == "__getattr__":
            getattr_function = statement
        elif (isinstance(statement, ast.Assign | ast.AnnAssign)
              and isinstance(statement.value, ast.Dict)
              and any(getattr(target, "id", None) == "_NAMES" for target in (
                  statement.targets if isinstance(statement, ast.Assign)
                  else [statement.target]))):
            for key, value in zip(statement.value.keys, statement.value.values, strict=True):
                if (isinstance(key, ast.Constant) and isinstance(key.value, str)
                        and isinstance(value, ast.Constant) and isinstance(value.value, str)):
                    targets[key.value] = f"{module.path}.{value.value}.{key.value}"
    if getattr_function is None:
        return {}
    for inner in ast.walk(getattr_function):
        if isinstance(inner, ast.ImportFrom) and inner.level:
            source = _absolute(module, inner.module or "", inner.level)
            for alias in inner.names:
                targets[alias.asname or alias.name] = f"{source}.{alias.name}"
    return targets


class LazyExports(Extension):
    def on_module_members(self, *, node, mod: Module, agent, **kwargs) -> None:
        if not isinstance(node, ast.Module):
            return
        for name, target in _lazy_targets(node, mod).items():
            if name not in mod.members:
                mod.set_member(name, Alias(name, target, parent=mod))
