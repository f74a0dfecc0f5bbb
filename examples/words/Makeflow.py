"""Word-frequency pipeline over texts/*.txt, built from pattern rules and POSIX shell tools."""

from makeflow import expand, glob_wildcards, rule

NAMES = sorted(glob_wildcards("texts/{name}.txt").name)

# One "word<TAB>count" line per distinct word, most frequent first (ties alphabetical).
# Doubled braces are literal braces for awk; raw strings pass \t and \n through to tr and
# awk unchanged; LC_ALL=C makes the sort order the same everywhere.
rule(
    "counts",
    inputs="texts/{name}.txt",
    outputs="counts/{name}.tsv",
    shell=(
        "export LC_ALL=C; "
        "tr '[:upper:]' '[:lower:]' < {inputs[0]}"
        r" | tr -cs '[:lower:]' '\n'"
        " | sed '/^$/d'"
        " | sort | uniq -c"
        " | sort -k1,1nr -k2,2"
        r""" | awk '{{ printf "%s\t%s\n", $2, $1 }}'"""
        " > {outputs[0]}"
    ),
)

rule(
    "top",
    inputs="counts/{name}.tsv",
    outputs="top/{name}.txt",
    shell="head -n 10 {inputs[0]} > {outputs[0]}",
)

rule(
    "report",
    inputs=expand("top/{name}.txt", name=NAMES),
    outputs="report.txt",
    shell=(
        "for f in {inputs}; do"
        ' echo "== $(basename "$f" .txt) =="; cat "$f"; echo;'
        " done > {outputs[0]}"
    ),
    default=True,
)
