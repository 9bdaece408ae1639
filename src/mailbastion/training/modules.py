"""Training modules: Markdown files with a TOML front matter holding the quiz, shipped in `data/modules/` and
added or replaced by a site in `[training] modules_dir`.

    +++
    id = "phishing"                 # letters, digits, - and _; a site file with a shipped id replaces it
    title = "Recognising phishing"
    minutes = 10                    # reading time, shown in the portal
    pass_mark = 80                  # percent of the questions answered right

    [[questions]]
    text = "What gives a phishing message away most reliably?"
    choices = ["A logo", "The sender's real domain", "A greeting"]
    answer = 2                      # 1-based: the right choice
    +++
    # The module text, in Markdown (raw HTML is not rendered)

    modules = load_modules(settings)          # {id: Module}, shipped then site; ModuleError names the file
    grade(module, {0: 2, 1: 1})               # Grade(score=percent, passed=bool, wrong=(question indexes))

Module bodies are rendered by the portal (portal/markdown.py `to_html`, raw HTML off): a site's module
cannot put script or markup into the portal beyond what Markdown makes.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mailbastion.config import Settings

__all__ = ["SHIPPED", "Grade", "Module", "ModuleError", "Question", "grade", "load_modules", "parse_module"]

SHIPPED = Path(__file__).parent / "data" / "modules"
FENCE = "+++"
MAX_MODULE_BYTES = 256 * 1024


class ModuleError(ValueError):
    """A module file that cannot be used; the message names the file and what is wrong."""


@dataclass(frozen=True, slots=True)
class Question:
    text: str
    choices: tuple[str, ...]
    answer: int  # 0-based index into choices


@dataclass(frozen=True, slots=True)
class Module:
    id: str
    title: str
    body: str  # Markdown
    questions: tuple[Question, ...]
    pass_mark: int = 80
    minutes: int = 10
    source: str = ""  # the file it came from


@dataclass(frozen=True, slots=True)
class Grade:
    score: int  # percent
    passed: bool
    wrong: tuple[int, ...]  # indexes of the questions answered wrong (or not at all)


def _valid_id(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= 64 and value.replace("-", "").replace("_", "").isalnum()


def parse_module(text: str, source: str = "<text>") -> Module:
    """One module from its file's text. Raises ModuleError naming `source`."""
    lines = text.lstrip("\ufeff").splitlines()
    if not lines or lines[0].strip() != FENCE:
        raise ModuleError(f"{source}: must start with a '+++' line opening the TOML front matter")
    try:
        end = next(i for i in range(1, len(lines)) if lines[i].strip() == FENCE)
    except StopIteration:
        raise ModuleError(f"{source}: the front matter has no closing '+++' line") from None
    try:
        meta = tomllib.loads("\n".join(lines[1:end]))
    except tomllib.TOMLDecodeError as exc:
        raise ModuleError(f"{source}: front matter: {exc}") from None
    body = "\n".join(lines[end + 1:]).strip() + "\n"
    unknown = set(meta) - {"id", "title", "minutes", "pass_mark", "questions"}
    if unknown:
        raise ModuleError(f"{source}: unknown front matter key(s): {', '.join(sorted(unknown))}")
    if not _valid_id(meta.get("id")):
        raise ModuleError(f"{source}: id must be 1-64 letters, digits, '-' or '_'")
    title = meta.get("title")
    if not isinstance(title, str) or not title.strip():
        raise ModuleError(f"{source}: title is missing")
    pass_mark, minutes = meta.get("pass_mark", 80), meta.get("minutes", 10)
    if not isinstance(pass_mark, int) or not 0 < pass_mark <= 100:
        raise ModuleError(f"{source}: pass_mark must be a whole percent, 1 to 100")
    if not isinstance(minutes, int) or not 0 < minutes <= 600:
        raise ModuleError(f"{source}: minutes must be 1 to 600")
    raw_questions = meta.get("questions", [])
    if not isinstance(raw_questions, list) or not raw_questions:
        raise ModuleError(f"{source}: the quiz needs at least one [[questions]] entry")
    questions = []
    for n, q in enumerate(raw_questions, 1):
        if not isinstance(q, dict) or set(q) - {"text", "choices", "answer"}:
            raise ModuleError(f"{source}: question {n}: only text, choices and answer are allowed")
        choices, answer, qtext = q.get("choices"), q.get("answer"), q.get("text")
        if not isinstance(qtext, str) or not qtext.strip():
            raise ModuleError(f"{source}: question {n} has no text")
        if (not isinstance(choices, list) or not 2 <= len(choices) <= 8
                or not all(isinstance(c, str) and c.strip() for c in choices)):
            raise ModuleError(f"{source}: question {n}: choices must be 2 to 8 texts")
        if not isinstance(answer, int) or isinstance(answer, bool) or not 1 <= answer <= len(choices):
            raise ModuleError(f"{source}: question {n}: answer must be the number of a choice, 1 to {len(choices)}")
        questions.append(Question(qtext.strip(), tuple(c.strip() for c in choices), answer - 1))
    return Module(meta["id"], title.strip(), body, tuple(questions), pass_mark, minutes, source)


def _read_dir(folder: Path) -> dict[str, Module]:
    found: dict[str, Module] = {}
    if not folder.is_dir():
        return found
    for path in sorted(folder.glob("*.md")):
        if path.stat().st_size > MAX_MODULE_BYTES:
            raise ModuleError(f"{path}: larger than {MAX_MODULE_BYTES} bytes")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise ModuleError(f"{path}: not UTF-8 text") from None
        module = parse_module(text, str(path))
        if module.id in found:
            raise ModuleError(f"{path}: id {module.id!r} is also used by {found[module.id].source}")
        found[module.id] = module
    return found


def load_modules(settings: Settings | None = None, *, site_dir: Path | None = None) -> dict[str, Module]:
    """The shipped modules, then the site's (`[training] modules_dir`), a site module replacing a shipped one
    of the same id. Ordered: shipped order first, then new site modules by id."""
    modules = _read_dir(SHIPPED)
    folder = site_dir if site_dir is not None else (
        settings.path(settings.training.modules_dir) if settings is not None else None)
    if folder is not None:
        modules.update(_read_dir(folder))
    return modules


def grade(module: Module, answers: Mapping[int, int]) -> Grade:
    """`answers`: question index -> chosen index (0-based). A question not answered counts as wrong."""
    wrong = tuple(i for i, q in enumerate(module.questions) if answers.get(i) != q.answer)
    total = len(module.questions)
    score = round(100 * (total - len(wrong)) / total)
    return Grade(score, score >= module.pass_mark, wrong)
