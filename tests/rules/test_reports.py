"""render: string.Template and jinja2 reports filled from real files."""

from __future__ import annotations

import json

import pytest

from makeflow import StepError
from makeflow_rules.reports import fill

from ruleshelp import fake_step


def setup(tmp_path, template_name, template):
    (tmp_path / "results").mkdir(exist_ok=True)
    (tmp_path / "results/metrics.json").write_text(json.dumps(
        {"r2": 0.91, "test": {"n": 40}, "lakes": ["a", "b"]}))
    (tmp_path / "results/table.md").write_text("| a | b |\n")
    (tmp_path / "figures").mkdir(exist_ok=True)
    (tmp_path / "figures/trend.svg").write_text("<svg/>")
    (tmp_path / template_name).write_text(template)
    return [tmp_path / template_name, tmp_path / "results/metrics.json",
            tmp_path / "results/table.md", tmp_path / "figures/trend.svg"]


def render(tmp_path, template_name, template, values=None, output="paper/report.md"):
    inputs = setup(tmp_path, template_name, template)
    out = tmp_path / "written.md"
    fill(fake_step(inputs, [out], names=["metrics", "table", "trend"], values=values or {},
                   output=str(tmp_path / output),
                   engine="jinja2" if template_name.endswith(".j2") else "string"))
    return out.read_text()


def test_a_plain_template_gets_values_json_text_and_relative_links(tmp_path):
    text = render(tmp_path, "r.md", "# $title\nr2 = $metrics_r2, n = ${metrics_test_n}\n"
                  "$table_text![trend]($trend) costs $$5\n", values={"title": "Lakes"})
    assert text == ("# Lakes\nr2 = 0.91, n = 40\n| a | b |\n"
                    "![trend](../figures/trend.svg) costs $5\n")


def test_a_jinja_template_loops_and_formats(tmp_path):
    text = render(tmp_path, "r.md.j2",
                  "{% for lake in metrics_data.lakes %}- {{ lake }}\n{% endfor %}"
                  "r2 {{ '%.1f' % metrics_r2 }}\n")
    assert text == "- a\n- b\nr2 0.9\n"


def test_an_unknown_name_fails_and_lists_the_known_ones(tmp_path):
    with pytest.raises(StepError, match=r"r.md uses \$r3, which no input or value gives "
                                        r"\(known: metrics, metrics_lakes, metrics_r2"):
        render(tmp_path, "r.md", "$r3")
    with pytest.raises(StepError, match="'r3' is undefined, which no input"):
        render(tmp_path, "r.md.j2", "{{ r3 }}")


def test_a_broken_jinja_template_names_its_line(tmp_path):
    with pytest.raises(StepError, match=r"r.md.j2:2: "):
        render(tmp_path, "r.md.j2", "ok\n{% for %}")


def test_a_report_rule_reruns_on_a_template_edit_and_on_a_value(project):
    project.write("metrics.json", '{"r2": 0.5}')
    project.write("report.tmpl", "r2 $metrics_r2 by $author\n")
    project.rules("""
        from makeflow_rules import render
        render("report", template="report.tmpl", output="out/report.md",
               inputs={"metrics": "metrics.json"}, values={"author": "Ada"})
    """)
    assert project.run("build").code == 0
    assert project.read("out/report.md") == "r2 0.5 by Ada\n"
    project.rules(project.read("Makeflow.py").replace("Ada", "Grace"))
    assert "parameter values" in project.run("status").out
    assert project.run("build").code == 0
    assert project.read("out/report.md") == "r2 0.5 by Grace\n"


@pytest.mark.parametrize(("args", "message"), [
    ('template="t", output="o", inputs={"a-b": "x.json"}', "'a-b' cannot be a template name"),
    ('template="t", output="o", values={"f": print}', "values= must hold plain values"),
])
def test_mistakes_in_a_render_rule_name_the_line(project, args, message):
    project.rules(f"""
        from makeflow_rules import render
        render("r", {args})
    """)
    done = project.run("list")
    assert done.code == 2 and "Makeflow.py:3" in done.err and message in done.err, done.err
