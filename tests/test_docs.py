"""The documentation's examples: the README's and every docs page's Python blocks run, the
commands they show parse, and the README keeps its promises.

Python blocks (```python fences) of each page run in order in one namespace, in a
temporary folder, with the sizes shrunk (`shrink`) so that a page runs in seconds: an
example that raises fails its page. Console blocks (```console) show a `pcnode`
command that fails at once and its output; they are run and must print that output.
Shell blocks (```bash) are not run; each `pcnode`
command in them is parsed by the command line's own parser, each `make` target must
exist in the Makefile, and each script under benchmarks/ or examples/ must exist and
define every flag given to it.
"""
from __future__ import annotations

import ast
import dataclasses
import importlib
import re
import shlex
import textwrap
from pathlib import Path

import pytest
import torch

import pcnode
from pcnode.cli import main
from pcnode.errors import ConfigError
from pcnode.flags import build_parser

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = [README, *sorted(DOCS.rglob("*.md"))]
# A fenced block, also indented inside a list item: (indent, language, code).
FENCE = re.compile(r"^([ \t]*)```([\w-]*)[^\n]*\n(.*?)^\1```[ \t]*$", re.M | re.S)


def blocks_of(text: str, language: str) -> list[str]:
    return [textwrap.dedent(code) for _, lang, code in FENCE.findall(text) if lang == language]


def blocks(page: Path, language: str) -> list[str]:
    return blocks_of(page.read_text(), language)


def name(page: Path) -> str:
    return str(page.relative_to(ROOT))


# The examples show real sizes (the authors' training runs 25,000 steps); the test runs
# them at a few steps on a few hundred trajectories.
def shrink(code: str) -> str:
    code = re.sub(r"\bsteps=([\d_]+)", lambda m: f"steps={min(4, max(2, int(m[1]) // 1000))}", code)
    return re.sub(r"\bn=([\d_]+)", lambda m: f"n={min(int(m[1]), 200)}", code)


def test_shrink_keeps_order_of_steps():
    # A resumed run asks for more steps than the run it continues, at any size.
    assert shrink("steps=2000; steps=4000; n=10_000; n=64; n_burn=4") == "steps=2; steps=4; n=200; n=64; n_burn=4"


@pytest.mark.parametrize("page", [p for p in PAGES if blocks(p, "python")], ids=name)
def test_python_examples_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    namespace = {"__name__": "__docs__"}
    try:
        for i, code in enumerate(blocks(page, "python"), 1):
            exec(compile(shrink(code), f"{name(page)}, python block {i}", "exec"), namespace)
    finally:
        torch.set_num_threads(threads)


def commands(page: Path) -> list[list[str]]:
    """The commands of a page's bash blocks, one token list each: continued lines joined,
    comments dropped, split at `;`, `&&` and `do`, shell variables read as 0."""
    out = []
    for code in blocks(page, "bash"):
        for line in code.replace("\\\n", " ").splitlines():
            tokens = ["0" if t.startswith("$") else t for t in shlex.split(line, comments=True)]
            command: list[str] = []
            for t in [*tokens, ";"]:
                if t in (";", "&&", "do", "done", "then"):
                    if command:
                        out.append(command)
                    command = []
                elif t.endswith(";"):
                    command.append(t[:-1])
                    out.append(command)
                    command = []
                else:
                    command.append(t)
    return out


def pcnode_args(command: list[str]) -> list[str] | None:
    """The arguments after `pcnode` (or `python -m pcnode`, `torchrun ... -m pcnode`), else None."""
    for i, t in enumerate(command):
        if t == "pcnode" or t.endswith("/pcnode"):
            return command[i + 1:]
        if t == "-m" and i + 1 < len(command) and command[i + 1] == "pcnode":
            return command[i + 2:]
    return None


MAKE_TARGETS = set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), re.M))


@pytest.mark.parametrize("page", [p for p in PAGES if blocks(p, "bash")], ids=name)
def test_shown_commands_exist(page):
    parser = build_parser()
    seen = 0
    for command in commands(page):
        args = pcnode_args(command)
        if args is not None and "--help" not in args:
            try:
                parser.parse_args(args)
            except ConfigError as e:
                pytest.fail(f"{name(page)}: `{shlex.join(command)}` does not parse: {e}")
            seen += 1
        elif command[0] == "make":
            assert set(command[1:]) <= MAKE_TARGETS, f"{name(page)}: no Makefile target for `{shlex.join(command)}`"
        elif command[0] in ("python", "bash") and command[1:2] and command[1].startswith(("benchmarks/", "examples/")):
            script = ROOT / command[1]
            assert script.is_file(), f"{name(page)}: `{shlex.join(command)}`: no {command[1]}"
            text = script.read_text()
            for flag in (t.split("=")[0] for t in command[2:] if t.startswith("--")):
                assert f'"{flag}"' in text, f"{name(page)}: {command[1]} has no flag {flag}"
    assert seen or not any("pcnode" in " ".join(c) for c in commands(page))


@pytest.mark.parametrize("page", [p for p in PAGES if blocks(p, "console")], ids=name)
def test_console_examples_print_what_they_show(page, capsys):
    for block in blocks(page, "console"):
        command, *shown = block.strip().splitlines()
        assert command.startswith("$ pcnode "), f"{name(page)}: a console block starts with `$ pcnode ...`"
        assert main(shlex.split(command[2:])[1:]) == 2
        printed = capsys.readouterr()
        assert (printed.out + printed.err).strip().splitlines() == shown


def test_quick_start_is_the_two_commands():
    section = README.read_text().split("## Quick start", 1)[1].split("\n## ", 1)[0]
    quick = [shlex.split(line, comments=True) for line in blocks_of(section, "bash")[0].splitlines()]
    assert [c for c in quick if c] == [["make", "demo"], ["make", "test"]]
    assert {"demo", "test"} <= MAKE_TARGETS


def test_readme_links_resolve():
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README.read_text()):
        if not target.startswith(("http://", "https://")):
            assert (ROOT / target).exists(), f"README links to {target}, which does not exist"


@pytest.mark.parametrize("page", [README, DOCS / "index.md"], ids=name)
def test_citation_names_this_version(page):
    versions = re.findall(r"version\s*=\s*\{([^}]*)\}", page.read_text())
    assert versions == [pcnode.__version__]


def test_defaults_table_matches_the_code():
    from pcnode import ModelConfig, SegmentRule, TrainConfig
    classes = {"TrainConfig": TrainConfig, "SegmentRule": SegmentRule, "ModelConfig": ModelConfig}
    rows = re.findall(r"^\| `(\w+)\.(\w+)` \| `([^`]*)` \|", (DOCS / "training.md").read_text(), re.M)
    assert len(rows) >= 20
    for cls, field, shown in rows:
        default = {f.name: f.default for f in dataclasses.fields(classes[cls])}[field]
        assert ast.literal_eval(shown) == default, f"training.md shows {cls}.{field} = {shown}; the code: {default!r}"


def test_api_reference_names_exist():
    # `make docs` fails on these too; this catches a rename without the docs' packages.
    names = re.findall(r"^::: ([\w.]+)", (DOCS / "api.md").read_text(), re.M)
    assert len(names) > 50
    for dotted in names:
        parts = dotted.split(".")
        for i in range(len(parts), 0, -1):
            try:
                obj = importlib.import_module(".".join(parts[:i]))
            except ModuleNotFoundError:
                continue
            for attr in parts[i:]:
                assert hasattr(obj, attr), f"docs/api.md documents {dotted}, which does not exist"
                obj = getattr(obj, attr)
            break


def hooks():
    spec = importlib.util.spec_from_file_location("docs_hooks", DOCS / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_cli_page_lists_every_flag_as_the_parser_defines_it():
    h = hooks()
    page = (DOCS / "cli.md").read_text()
    shown = page.split(h.BEGIN, 1)[1].split(h.END, 1)[0].strip()
    assert shown == h.flag_tables().strip(), "docs/cli.md's flag tables differ from the parser: python docs/hooks.py"


def test_the_cli_page_names_every_model_and_task_there_is():
    from pcnode.model import MODELS
    from pcnode.tasks import TASKS
    prose = " ".join((DOCS / "cli.md").read_text().split())
    assert re.findall(r"`(\w+)`", re.search(r"Models: (.*?)\(", prose)[1]) == list(MODELS)
    assert re.findall(r"`(\w+)`", re.search(r"Tasks: (.*?)\.", prose)[1]) == list(TASKS)


@pytest.fixture(scope="module")
def evaluate_keys():
    model = pcnode.build_model(pcnode.ModelConfig(state_dim=2, hidden=8, latent=8), seed=0)
    return set(pcnode.evaluate(model, torch.zeros(2, 6, 2)))


@pytest.mark.parametrize("page", [README, DOCS / "index.md"], ids=name)
def test_the_keys_shown_for_evaluate_are_the_keys_it_returns(page, evaluate_keys):
    shown = re.search(r"pcnode\.evaluate\(model, test\)\s+# \{(.*)\}", page.read_text())[1]
    assert set(re.findall(r'"(\w+)"', shown)) == evaluate_keys


def test_the_rollouts_page_explains_every_score(evaluate_keys):
    block = next(b for b in blocks(DOCS / "rollouts.md", "python") if "scores = pcnode.evaluate(model, test)" in b)
    assert set(re.findall(r'scores\["(\w+)"\]', block)) == evaluate_keys


def test_the_docstrings_the_api_page_shows_run_as_written():
    import doctest

    import pcnode.pretrained
    for module in (pcnode, pcnode.pretrained):
        assert "doctest:" not in module.__doc__  # a directive would be shown on the page
        assert doctest.testmod(module).failed == 0


def test_the_404_page_links_its_assets_from_the_site_folder_not_the_server_root():
    h = hooks()
    html = ('<link rel="stylesheet" href="/assets/main.css"><script src="/assets/bundle.js"></script>'
            '<a href="/index.html">home</a><a href="//example.org/x">x</a>{"base": "/", "features": []}')
    fixed = h.on_post_template(html, "404.html", config={})
    assert 'href="./assets/main.css"' in fixed and 'src="./assets/bundle.js"' in fixed
    assert 'href="./index.html"' in fixed and 'href="//example.org/x"' in fixed and '"base": "."' in fixed
    assert h.on_post_template(html, "sitemap.xml", config={}) == html
    assert "hooks:\n  - docs/hooks.py" in (ROOT / "mkdocs.yml").read_text()
