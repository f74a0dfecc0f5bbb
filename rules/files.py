"""Step functions that copy bytes: publish one file, or join several into one."""

from __future__ import annotations

import shutil
from typing import Any


def copy_file(step: Any) -> None:
    """Copy ``inputs[0]`` to ``outputs[0]`` byte for byte.

    A rule that publishes an artifact (to ``deploy/``, ``dist/``...) needs nothing more; going
    through ``shutil.copyfile`` keeps binary files such as pickles intact.

    Example::

        rule("publish", inputs="model.pkl", outputs="deploy/model.pkl")(copy_file)
    """
    shutil.copyfile(step.inputs[0], step.outputs[0])


def concat(step: Any) -> None:
    """Concatenate all inputs, in order, into ``outputs[0]``.

    Bytes are copied unchanged, so no encoding is assumed and no newline is added between files.

    Example::

        rule("book", inputs=["ch1.md", "ch2.md"], outputs="book.md")(concat)
    """
    with open(step.outputs[0], "wb") as out:
        for path in step.inputs:
            with open(path, "rb") as src:
                shutil.copyfileobj(src, out)
