"""The documentation's build hook (mkdocs.yml `hooks:`) and its parts generated from the code.

`on_post_template` makes 404.html link its stylesheets, scripts and pages relative to the
site's root folder, as every other page of this flat site does: MkDocs writes them from
"/", which finds nothing when the site is read from disk or served below a server's root.

`flag_tables()` renders every flag of every subcommand with its help, as docs/cli.md
shows them between its FLAGS markers; `python docs/hooks.py` writes them there, and
tests/test_docs.py fails when the page and the code disagree.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

BEGIN, END = "<!-- FLAGS: written by `python docs/hooks.py` from the command line's parser -->", "<!-- /FLAGS -->"
CLI_PAGE = Path(__file__).parent / "cli.md"


def on_post_template(output: str, template_name: str, config) -> str:
    if template_name != "404.html":
        return output
    output = re.sub(r'\b(href|src)="/(?!/)', r'\1="./', output)
    return re.sub(r'"base":\s*"/"', '"base": "."', output)


def flag_tables() -> str:
    """Markdown: one table per subcommand, each flag with its help as `--help` prints it."""
    import dataclasses

    from pcnode import ModelConfig, SegmentRule, TrainConfig
    from pcnode.flags import build_parser
    fields = {f.name: cls.__name__ for cls in (TrainConfig, SegmentRule, ModelConfig) for f in dataclasses.fields(cls)}
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    out = []
    for name, command in commands.items():
        out += [f"### pcnode {name}", "", "| flag | what it does |", "|---|---|"]
        for action in command._actions:
            if not action.option_strings or action.help in (None, argparse.SUPPRESS) or "-h" in action.option_strings:
                continue
            text = action.help % {**vars(action), "prog": command.prog}
            if text.startswith("(default") and action.dest in fields:  # a config field: its meaning is on that page
                text = f"`{fields[action.dest]}.{action.dest}`, see [Training](training.md#defaults) {text}"
            if action.choices is not None and not isinstance(action, argparse._SubParsersAction):
                text += f" (one of: {', '.join(map(str, action.choices))})"
            out.append(f"| `{action.option_strings[-1]}` | {text.replace('|', '&#124;')} |")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def write_flag_tables(page: Path = CLI_PAGE) -> None:
    text = page.read_text()
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    page.write_text(f"{head}{BEGIN}\n\n{flag_tables()}\n{END}{tail}")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    write_flag_tables()
