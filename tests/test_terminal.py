"""makeflow on a real terminal (a pseudo-terminal): colours, the cursor, Ctrl-C."""

from __future__ import annotations

import re

import pytest
from terminal import Terminal

STYLE = re.compile(rb"\x1b\[[0-9;]*m")  # SGR: colours, bold, dim

COPY = ('from makeflow import rule\n'
        'rule("a", inputs="in.txt", outputs="a.txt", shell="cp {inputs} {outputs}")\n')


@pytest.mark.parametrize("args", [["build", "nosuch"], ["build"], ["build", "-B"]])
def test_no_color_turns_off_every_colour_the_error_prefix_included(project, args):
    project.write("in.txt", "x")
    project.rules(COPY)
    coloured = Terminal(project.root, *args)
    coloured.wait()
    assert STYLE.search(coloured.output), coloured.text  # so the check below can fail
    plain = Terminal(project.root, *args, env={"NO_COLOR": "1"})
    code = plain.wait()
    assert code == coloured.status
    assert not STYLE.search(plain.output), plain.text
    assert b"makeflow: error: " in plain.output or b"ran " in plain.output
