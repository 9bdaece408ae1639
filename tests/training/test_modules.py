"""Training modules: the shipped five parse with their quizzes, a site module replaces or adds one, a bad file
is refused with a line naming it, grading counts unanswered questions as wrong, and module text cannot carry
markup or script into the portal."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailbastion.portal.markdown import to_html
from mailbastion.training.modules import ModuleError, grade, load_modules, parse_module
from mailbastion.training.simulation import load_templates

SITE = """+++
id = "{id}"
title = "Site rules"
pass_mark = 50

[[questions]]
text = "Who reads the report address?"
choices = ["Nobody", "The security team"]
answer = 2

[[questions]]
text = "Is it fine to forward phishing to colleagues?"
choices = ["Yes", "No"]
answer = 2
+++
# Our own rules
Report to **security@example.org**.
"""


def test_the_five_shipped_modules_parse_with_a_quiz_each() -> None:
    modules = load_modules()
    assert list(modules) == ["phishing", "attachments", "passwords", "confidential", "reporting"]
    for m in modules.values():
        assert m.title and m.body.startswith("# ") and len(m.questions) >= 3
        for q in m.questions:
            assert 0 <= q.answer < len(q.choices)
        right = {i: q.answer for i, q in enumerate(m.questions)}
        assert grade(m, right).score == 100 and grade(m, right).passed
        assert not grade(m, {}).passed and grade(m, {}).wrong == tuple(range(len(m.questions)))


def test_a_site_module_adds_or_replaces_a_shipped_one(tmp_path: Path) -> None:
    (tmp_path / "rules.md").write_text(SITE.format(id="site-rules"))
    (tmp_path / "phishing.md").write_text(SITE.format(id="phishing"))
    modules = load_modules(site_dir=tmp_path)
    assert modules["site-rules"].title == "Site rules" and modules["site-rules"].pass_mark == 50
    assert modules["phishing"].title == "Site rules"  # replaced
    m = modules["site-rules"]
    assert grade(m, {0: 1, 1: 0}).score == 50 and grade(m, {0: 1, 1: 0}).passed
    assert grade(m, {0: 0, 1: 0}).score == 0


@pytest.mark.parametrize(("text", "says"), [
    ("# no front matter\n", "must start with a '+++'"),
    ("+++\nid = \"x\"\n", "no closing"),
    ("+++\nid = \"x\"\ntitle = \"T\"\n+++\nbody\n", "at least one [[questions]]"),
    (SITE.format(id="bad id!"), "id must be"),
    (SITE.format(id="x").replace("answer = 2", "answer = 3", 1), "answer must be the number of a choice"),
    (SITE.format(id="x").replace("pass_mark = 50", "pass_mark = 50\nsecret = 1"), "unknown front matter key"),
    ("+++\nid = \n+++\n", "front matter:"),
])
def test_a_bad_module_is_refused_naming_the_file(text: str, says: str) -> None:
    with pytest.raises(ModuleError) as err:
        parse_module(text, "site/x.md")
    assert str(err.value).startswith("site/x.md: ") and says in str(err.value)


def test_module_text_cannot_carry_markup_or_script() -> None:
    html = to_html("# Title\n\n<script>alert(1)</script> <b>x</b> [a](javascript:alert(2)) [b](https://ok.example/)")
    assert "<script>" not in html and "&lt;script&gt;" in html and "<b>" not in html
    assert 'href="javascript:' not in html and 'href="https://ok.example/"' in html and "<h1>Title</h1>" in html


def test_shipped_simulation_templates_are_harmless() -> None:
    templates = load_templates()
    assert len(templates) >= 3
    modules = load_modules()
    for t in templates.values():
        assert t.sender.rstrip(">").endswith(".invalid")  # RFC 6761: nobody can own or answer that domain
        assert "{link}" in t.body and t.signs and t.module in modules


def test_the_training_section_refuses_unknown_keys_and_bad_ids() -> None:
    from pydantic import ValidationError

    from mailbastion.config import Settings

    assert Settings().training.mandatory == ("phishing", "attachments", "passwords", "confidential", "reporting")
    for bad in ({"mandatory": ["ok", "no way"]}, {"due_days": 0}, {"sender_local_part": "a b"}, {"remind": 1}):
        with pytest.raises(ValidationError):
            Settings.model_validate({"training": bad})
