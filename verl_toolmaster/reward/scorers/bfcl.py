"""BFCL through bfcl-eval's own checkers: the AST checker (single-turn) and the multi-turn state + response checker.

bfcl-eval is installed with ``--no-deps``. Of its checker modules, ``multi_turn_eval.*`` and ``utils`` import
cleanly; ``ast_eval.ast_checker`` imports ``constants.model_config``, which imports every model handler
(anthropic, google-genai, ...). The AST checker only reads ``MODEL_CONFIG_MAPPING[model].underscore_to_dot``
from it, so when the real module cannot be imported we load the checker against a one-entry stand-in and
remove the stand-in from ``sys.modules`` afterwards. Everything else is bfcl-eval's code, called unchanged.
"""

from __future__ import annotations

import importlib
import inspect
import sys
import threading
import types
import uuid
from types import ModuleType, SimpleNamespace
from typing import Any

from ...envs.calls import is_keyword_name
from .base import Episode, Scorer, ScoreResult, register_scorer

# The model name we pass to bfcl-eval's checkers. Calls keep the function names of the BFCL docs (dots
# included), so the checker must not convert "." to "_".
MODEL_KEY = "toolmaster"
# Env errors raised before the call reached the backend: such a call did not happen in the rollout.
_REJECTED_BEFORE_BACKEND = frozenset({"unknown_tool", "bad_arguments", "schema"})
_INSTALL_HINT = "install it with: pip install --no-deps bfcl-eval==2026.3.23 mpmath==1.3.0"

_load_lock = threading.Lock()
_ast_module: ModuleType | None = None


def ast_checker_module() -> ModuleType:
    """``bfcl_eval.eval_checker.ast_eval.ast_checker``, importable without bfcl-eval's model-handler deps."""
    global _ast_module
    if _ast_module is not None:
        return _ast_module
    with _load_lock:
        if _ast_module is not None:
            return _ast_module
        name, cfg_name = "bfcl_eval.eval_checker.ast_eval.ast_checker", "bfcl_eval.constants.model_config"
        try:
            importlib.import_module("bfcl_eval.constants.enums")
        except ImportError as exc:
            raise ImportError(f"bfcl-eval is not importable ({exc}); {_INSTALL_HINT}") from exc
        try:
            module = importlib.import_module(name)
        except ImportError:
            stub = types.ModuleType(cfg_name)
            stub.MODEL_CONFIG_MAPPING = {}
            sys.modules[cfg_name] = stub
            try:
                module = importlib.import_module(name)
            finally:
                if sys.modules.get(cfg_name) is stub:
                    del sys.modules[cfg_name]
        module.MODEL_CONFIG_MAPPING.setdefault(MODEL_KEY, SimpleNamespace(underscore_to_dot=False))
        _ast_module = module
        return module


def checker_language(category: str) -> Any:
    """bfcl-eval's ``Language`` of a category, decided as its evaluator does (``is_java`` / ``is_js``)."""
    from bfcl_eval.constants.enums import Language
    from bfcl_eval.utils import is_java, is_js

    if is_js(category):
        return Language.JAVASCRIPT
    if is_java(category):
        return Language.JAVA
    return Language.PYTHON


def check_source_types(functions: list[dict[str, Any]], language: Any) -> None:
    """Raise ValueError unless every parameter of Java/JavaScript ``functions`` has a type of that language.

    bfcl-eval's checker reads the declared Java/JavaScript type of each argument to convert the model's string
    back to a value; it must get the docs as shipped, not the language-hinted ones (all types "string") shown
    to the model. A ground truth holding hinted docs is a data bug (prepared by an old adapter), not a wrong answer.
    """
    from bfcl_eval.constants.enums import Language
    from bfcl_eval.constants.type_mappings import JAVA_TYPE_CONVERSION, JS_TYPE_CONVERSION

    known = {Language.JAVA: JAVA_TYPE_CONVERSION, Language.JAVASCRIPT: JS_TYPE_CONVERSION}.get(language)
    if known is None:
        return
    for f in functions:
        for name, prop in ((f.get("parameters") or {}).get("properties") or {}).items():
            if prop.get("type") not in known:
                raise ValueError(
                    f"bfcl_single ground truth: {f.get('name')}.{name} has type {prop.get('type')!r}, not a {language.value} "
                    "type; 'functions' must be BFCL's docs without language hints (re-run prepare.py)"
                )


# ---------------------------------------------------------------- single turn


@register_scorer("bfcl_single")
class BFCLSingleScorer(Scorer):
    """BFCL single-turn categories with bfcl-eval's ``ast_checker``; irrelevance = no action.

    Ground truth: ``{"category", "id", "functions", "possible_answer"}``. The model output handed to the
    checker is ``[{name: arguments}]`` over the episode's actions (accepted execute-phase calls), which is
    the shape bfcl-eval's decoder produces. Binary answer, as in BFCL.
    """

    detail_keys = ("bfcl/actions",)

    def score(self, ground_truth: dict[str, Any], episode: Episode) -> ScoreResult:
        category = ground_truth["category"]
        functions = ground_truth["functions"]
        if not isinstance(category, str) or not isinstance(functions, list):
            raise ValueError("bfcl_single ground truth needs 'category' (str) and 'functions' (list)")
        doc_names = {f["name"] for f in functions}
        model_output = [{self._doc_name(c["name"], doc_names): c["arguments"]} for c in episode.actions()]
        details = {"bfcl/actions": float(len(model_output))}
        if "irrelevance" in category:
            if model_output:
                return ScoreResult(0.0, "bfcl:irrelevance_error:decoder_success", details)
            return ScoreResult(1.0, "correct", details)
        if "relevance" in category:  # live_relevance: any call counts
            return ScoreResult(1.0 if model_output else 0.0, "correct" if model_output else "bfcl:relevance_error", details)
        if not model_output:
            return ScoreResult(0.0, "no_call", details)
        checker = ast_checker_module()
        language = checker_language(category)
        check_source_types(functions, language)
        try:
            result = checker.ast_checker(functions, model_output, ground_truth["possible_answer"], language, category, MODEL_KEY)
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            # Some malformed model outputs (e.g. an argument of an unexpected nested type) make bfcl-eval's checker
            # raise instead of returning a verdict; that is a rejected output, not a scorer failure.
            return ScoreResult(0.0, f"bfcl:checker_raised:{type(exc).__name__}", details)
        if result["valid"]:
            return ScoreResult(1.0, "correct", details)
        return ScoreResult(0.0, f"bfcl:{result.get('error_type', 'invalid')}", details)

    @staticmethod
    def _doc_name(name: str, doc_names: set[str]) -> str:
        """Map a name whose dots were replaced by underscores (OpenAI-style tool names) back to the BFCL doc name."""
        if name in doc_names:
            return name
        for doc in doc_names:
            if "." in doc and doc.replace(".", "_") == name:
                return doc
        return name


# ---------------------------------------------------------------- multi turn

_method_cache: dict[str, frozenset[str]] = {}


def _public_methods(class_names: list[str]) -> frozenset[str]:
    from bfcl_eval.constants.executable_backend_config import CLASS_FILE_PATH_MAPPING

    out: set[str] = set()
    for cls_name in class_names:
        if cls_name not in _method_cache:
            if cls_name not in CLASS_FILE_PATH_MAPPING:
                raise ValueError(f"bfcl_multi ground truth names unknown class {cls_name!r}")
            cls = getattr(importlib.import_module(CLASS_FILE_PATH_MAPPING[cls_name]), cls_name)
            _method_cache[cls_name] = frozenset(
                n for n, _ in inspect.getmembers(cls, predicate=inspect.isfunction) if not n.startswith("_")
            )
        out |= _method_cache[cls_name]
    return frozenset(out)


def call_string(name: str, arguments: dict[str, Any], allowed: frozenset[str]) -> str:
    """The Python call string bfcl-eval's executor ``eval``s, built only from checked parts.

    bfcl-eval evaluates call strings in its own module namespace, so an arbitrary model-chosen name such as
    ``open`` would reach Python builtins. A name that is not a public method of the task's classes, or an
    argument name that is not a plain identifier, becomes a call to an undefined name: the executor records
    ``Error during execution: name ... is not defined`` for it, which is what bfcl-eval records for an unknown
    function too. Values are rendered with ``repr`` of their JSON-decoded form, i.e. as literals.
    """
    if name not in allowed or not all(is_keyword_name(k) for k in arguments):
        return "_toolmaster_rejected_call()"
    return f"{name}({', '.join(f'{k}={v!r}' for k, v in arguments.items())})"


@register_scorer("bfcl_multi")
class BFCLMultiScorer(Scorer):
    """BFCL multi-turn with bfcl-eval's ``multi_turn_checker`` (state and execution-response checks per turn).

    The checker executes the model's execute-phase calls of each user turn and the ground truth on fresh
    instances of the task's classes (a unique model name per call, so bfcl-eval's instance cache in its module
    globals never carries state from one trajectory to the next; the entries are removed afterwards). Calls the
    environment rejected before running them (unknown tool, bad or schema-violating arguments) are left out:
    they did not happen in the rollout. An episode that left a user turn without an ``<answer>`` (it ended
    early, or ran out of budget mid-turn) fails, as BFCL's force-terminated entries do. Binary answer.
    """

    detail_keys = ("bfcl/actions",)
    cpu_heavy = True
    max_calls_per_turn = 256  # spam beyond this is not re-executed (it is still visible in the cost)

    def score(self, ground_truth: dict[str, Any], episode: Episode) -> ScoreResult:
        from bfcl_eval.eval_checker.multi_turn_eval import multi_turn_checker as mtc
        from bfcl_eval.eval_checker.multi_turn_eval import multi_turn_utils

        gt_turns = ground_truth["ground_truth"]
        entry_id = ground_truth["id"]
        classes = ground_truth["involved_classes"]
        if not isinstance(gt_turns, list) or not isinstance(entry_id, str) or not isinstance(classes, list):
            raise ValueError("bfcl_multi ground truth needs 'ground_truth' (list), 'id' (str), 'involved_classes' (list)")
        if bool(ground_truth.get("long_context")) != ("long_context" in entry_id):
            raise ValueError(f"bfcl_multi ground truth {entry_id!r}: long_context flag disagrees with the id")
        allowed = _public_methods(classes)

        per_turn: list[list[str]] = [[] for _ in gt_turns]
        used = 0
        for c in episode.execute_calls():
            if not isinstance(c["arguments"], dict) or c.get("error_kind") in _REJECTED_BEFORE_BACKEND:
                continue
            turn = c["turn"]
            if 0 <= turn < len(per_turn) and len(per_turn[turn]) < self.max_calls_per_turn:
                per_turn[turn].append(call_string(c["name"], c["arguments"], allowed))
                used += 1
        details = {"bfcl/actions": float(used)}
        answered = [u < len(episode.answers) and episode.answers[u] is not None for u in range(len(gt_turns))]
        if not all(answered):  # a user turn the model never closed with <answer>
            return ScoreResult(0.0, "bfcl:multi_turn:force_terminated", details)

        decoded = [[calls] if calls else [] for calls in per_turn]
        test_entry = {"id": entry_id, "initial_config": ground_truth["initial_config"], "involved_classes": classes}
        model_name = f"{MODEL_KEY}_{uuid.uuid4().hex}"
        try:
            result = mtc.multi_turn_checker(decoded, gt_turns, test_entry, entry_id.rsplit("_", 1)[0], model_name)
        finally:
            namespace = vars(multi_turn_utils)
            for key in [k for k in namespace if k.startswith(model_name)]:
                namespace.pop(key, None)
        if result["valid"]:
            return ScoreResult(1.0, "correct", details)
        return ScoreResult(0.0, f"bfcl:{result.get('error_type', 'invalid')}", details)
