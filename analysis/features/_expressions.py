"""Safe arithmetic expressions over table columns (no ``eval`` of user text)."""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from analysis.errors import ParameterError

__all__ = ["FUNCTIONS", "evaluate"]

FUNCTIONS: Mapping[str, Callable[..., Any]] = {
    "log": np.log,
    "log10": np.log10,
    "log2": np.log2,
    "exp": np.exp,
    "sqrt": np.sqrt,
    "abs": np.abs,
    "min": np.minimum,
    "max": np.maximum,
}
"""Functions an expression may call (element-wise NumPy functions)."""

_BINARY: Mapping[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
    ast.Mod: operator.mod,
}
_COMPARE: Mapping[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
}


def evaluate(expression: str, table: pd.DataFrame) -> npt.NDArray[Any]:
    """Evaluate ``expression`` row-wise over the columns of ``table``.

    The expression is parsed with :mod:`ast` and walked here; only column names,
    numbers, ``+ - * / ** %``, comparisons, ``and``/``or``/``not`` and the
    :data:`FUNCTIONS` are allowed, so user text can never run code. Column names that
    are not identifiers can be written in backticks: ```mean intensity` / volume_um3``.

    Returns
    -------
    (len(table),) array
        Float for arithmetic, bool for comparisons.
    """
    if not isinstance(expression, str) or not expression.strip():
        raise ParameterError("expression is empty")
    names: dict[str, str] = {}
    text = expression
    # Backtick-quoted column names -> placeholder identifiers.
    while "`" in text:
        start = text.index("`")
        stop = text.find("`", start + 1)
        if stop < 0:
            raise ParameterError(f"unbalanced backtick in expression {expression!r}")
        key = f"__col{len(names)}"
        names[key] = text[start + 1 : stop]
        text = text[:start] + key + text[stop + 1 :]
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise ParameterError(f"cannot parse expression {expression!r}: {exc.msg}") from exc

    def walk(node: ast.AST) -> Any:
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return float(node.value)
        if isinstance(node, ast.Name):
            col = names.get(node.id, node.id)
            if col not in table.columns:
                raise ParameterError(f"expression {expression!r} uses unknown column {col!r}")
            return table[col].to_numpy()
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            with np.errstate(divide="ignore", invalid="ignore"):
                return _BINARY[type(node.op)](walk(node.left), walk(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -walk(node.operand)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return np.logical_not(walk(node.operand))
        if isinstance(node, ast.BoolOp):
            values = [walk(v) for v in node.values]
            fn = np.logical_and if isinstance(node.op, ast.And) else np.logical_or
            out = values[0]
            for v in values[1:]:
                out = fn(out, v)
            return out
        if isinstance(node, ast.Compare):
            left = walk(node.left)
            result: Any = True
            for op, right_node in zip(node.ops, node.comparators, strict=True):
                if type(op) not in _COMPARE:
                    raise ParameterError(f"operator not allowed in {expression!r}")
                right = walk(right_node)
                result = np.logical_and(result, _COMPARE[type(op)](left, right))
                left = right
            return result
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in FUNCTIONS
            and not node.keywords
        ):
            with np.errstate(divide="ignore", invalid="ignore"):
                return FUNCTIONS[node.func.id](*(walk(a) for a in node.args))
        raise ParameterError(
            f"expression {expression!r} contains {type(node).__name__!s}, which is not allowed "
            f"(use columns, numbers, arithmetic, comparisons and {', '.join(FUNCTIONS)})"
        )

    value = walk(tree)
    return np.broadcast_to(np.asarray(value), (len(table),)).copy()
