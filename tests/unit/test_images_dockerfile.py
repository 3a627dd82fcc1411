"""Dockerfile parsing, variable substitution and config-only instructions (image-service.md 5.8, 6).

Vectors follow Docker's classic parser and shell lexer (moby/buildkit ``parser``
and ``shell/lex.go``); parsers raise only InvalidArgumentError.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cairn.core.errors import InvalidArgumentError
from cairn.images.build.dockerfile import parse_dockerfile, parse_instruction
from cairn.images.build.instructions import Scope, apply_config, env_map
from cairn.images.build.shell import process_word, process_words

ENV = {"V": "value", "EMPTY": "", "SP": "a b", "H": "hello"}


# -- substitution ------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$V", "value"),
        ("${V}", "value"),
        ("x${V}y", "xvaluey"),
        ("$V-$V", "value-value"),
        ("$UNSET", ""),
        ("${UNSET}", ""),
        ("${UNSET:-default}", "default"),
        ("${EMPTY:-default}", "default"),
        ("${V:-default}", "value"),
        ("${EMPTY-default}", ""),
        ("${UNSET-default}", "default"),
        ("${V:+alt}", "alt"),
        ("${EMPTY:+alt}", ""),
        ("${UNSET:+alt}", ""),
        ("${EMPTY+alt}", "alt"),
        ("${UNSET:-$V}", "value"),
        ("${UNSET:-'quoted $V'}", "quoted $V"),
        (r"\$V", "$V"),
        (r"\${V}", "${V}"),
        ("'$V'", "$V"),
        ('"$V"', "value"),
        ('"a \\" b"', 'a " b'),
        ('"a \\$V"', "a $V"),
        ('"a \\n"', "a \\n"),
        ("a\\ b", "a b"),
        ("$", "$"),
        ("a$", "a$"),
        ("$1x", "x"),
        ("trail\\", "trail"),
        ("${V:?must}", "value"),
    ],
)
def test_process_word(text: str, expected: str) -> None:
    assert process_word(text, ENV) == expected


@pytest.mark.parametrize(
    "text",
    ["${V", "${}", "${:-x}", "${V:=x}", "'open", '"open', "${UNSET:?is required}", "${EMPTY:?}",
     "${UNSET?}"],
)
def test_process_word_errors(text: str) -> None:
    with pytest.raises(InvalidArgumentError):
        process_word(text, ENV)


def test_backtick_escape_token() -> None:
    assert process_word("`$V", ENV, escape="`") == "$V"
    assert process_word("c:\\dir\\$V", ENV, escape="`") == "c:\\dir\\value"


def test_process_words_splits_unquoted_whitespace_including_expansions() -> None:
    assert process_words("a $SP 'c d' \"$SP\"", ENV) == ["a", "a", "b", "c d", "a b"]
    assert process_words("  ", ENV) == []


@given(st.text(max_size=40))
def test_process_word_raises_only_invalid_argument(text: str) -> None:
    try:
        process_word(text, ENV)
        process_words(text, ENV)
    except InvalidArgumentError:
        pass


# -- parsing -----------------------------------------------------------------------------------

def test_stages_meta_args_and_line_numbers() -> None:
    df = parse_dockerfile(
        "# syntax=docker/dockerfile:1\n"
        "ARG BASE=busybox\n"
        "\n"
        "FROM ${BASE} AS Builder\n"
        "RUN echo one \\\n"
        "    two\n"
        "from scratch\n"
        "COPY --from=builder /a /b\n"
    )
    assert [a.pairs for a in df.meta_args] == [(("BASE", "busybox"),)]
    assert [(s.index, s.base, s.name) for s in df.stages] == [(0, "${BASE}", "builder"), (1, "scratch", None)]
    run = df.stages[0].instructions[0]
    assert (run.keyword, run.line, run.args) == ("RUN", 5, "echo one     two")
    assert run.original == "RUN echo one     two"
    assert df.stages[1].from_instruction.original == "from scratch"
    assert df.stage_index("BUILDER") == 0
    copy = df.stages[1].instructions[0]
    assert copy.flag("from") == "builder" and copy.words == ("/a", "/b")


def test_continuations_skip_comments_and_empty_lines() -> None:
    df = parse_dockerfile("FROM a\nRUN echo a \\\n# a comment\n\n   b \\\n  c\nCMD x\n")
    run, cmd = df.stages[0].instructions
    assert run.args == "echo a    b   c"
    assert (cmd.keyword, cmd.line) == ("CMD", 7)


def test_escape_directive_backtick() -> None:
    df = parse_dockerfile("# escape=`\nFROM a\nRUN dir `\n  c:\\\n")
    assert df.escape == "`"
    assert df.stages[0].instructions[0].args == "dir   c:\\"


def test_bom_and_bare_keyword_on_the_last_line() -> None:
    with pytest.raises(InvalidArgumentError, match="line 2: RUN requires at least one argument"):
        parse_dockerfile("\ufeffFROM a\nRUN")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no instructions"),
        ("# only a comment\n", "no instructions"),
        ("RUN x\nFROM a\n", "line 1: RUN before the first FROM"),
        ("ARG A\n", "no build stage"),
        ("FROM a\nFOO bar\n", "line 2: unknown instruction: FOO"),
        ("FROM a b\n", "FROM requires either one or three arguments"),
        ("FROM a AS 1x\n", "invalid name for build stage"),
        ("FROM a AS x\nFROM b AS X\n", "duplicate name"),
        ("FROM a\nCOPY onlyone\n", "COPY requires at least two arguments"),
        ("FROM a\nCOPY --link a b\n", "BuildKit feature"),
        ("FROM a\nRUN --mount=type=cache,target=/x true\n", "BuildKit feature"),
        ("FROM a\nCOPY --bogus=1 a b\n", "Unknown flag: bogus"),
        ("FROM a\nSHELL /bin/bash -c\n", "JSON form"),
        ("FROM a\nENV\n", "ENV requires at least one argument"),
        ("FROM a\nENV A=1 B\n", "can't find ="),
        ("FROM a\nENV A\n", "ENV must have two arguments"),
        ("FROM a\nONBUILD ONBUILD RUN x\n", "isn't allowed"),
        ("FROM a\nONBUILD FROM x\n", "FROM isn't allowed as an ONBUILD trigger"),
        ("FROM a\nHEALTHCHECK WHAT x\n", "Unknown type"),
        ("FROM a\nHEALTHCHECK --interval=1s NONE\n", "NONE takes no arguments"),
        ("FROM a\nSTOPSIGNAL\n", "STOPSIGNAL requires exactly one argument"),
        ("# escape=x\nFROM a\n", "invalid escape token"),
        ("FROM a\nARG 1bad\n", "ARG names"),
    ],
)
def test_syntax_errors_name_the_line(text: str, message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        parse_dockerfile(text)


def test_exec_and_shell_forms() -> None:
    df = parse_dockerfile(
        'FROM a\nRUN ["echo", "hi"]\nRUN [not json\nCMD echo $HOME\nENTRYPOINT ["a", 1]\n'
        'COPY ["a b", "/c d/"]\nVOLUME ["/v1", "/v2"]\n'
    )
    run_exec, run_shell, cmd, entry, copy, volume = df.stages[0].instructions
    assert run_exec.exec_form == ("echo", "hi")
    assert run_shell.exec_form is None and run_shell.args == "[not json"
    assert cmd.exec_form is None and cmd.args == "echo $HOME"
    assert entry.exec_form is None  # not all strings: shell form, as Docker
    assert copy.exec_form == ("a b", "/c d/")
    assert volume.exec_form == ("/v1", "/v2")


def test_env_label_arg_forms_keep_quotes_until_expansion() -> None:
    df = parse_dockerfile(
        'FROM a\nENV A=1 B="two words" C=x\\ y\nENV LEGACY hello  world\nLABEL "k 1"=v\nARG X Y=2\n'
    )
    env, legacy, label, arg = df.stages[0].instructions
    assert env.pairs == (("A", "1"), ("B", '"two words"'), ("C", "x\\ y"))
    assert legacy.pairs == (("LEGACY", "hello  world"),)
    assert label.pairs == (('"k 1"', "v"),)
    assert arg.pairs == (("X", None), ("Y", "2"))


def test_onbuild_and_healthcheck_keep_their_inner_instruction() -> None:
    df = parse_dockerfile(
        "FROM a\nONBUILD RUN echo trig\nHEALTHCHECK --interval=5s --retries=3 CMD [\"curl\", \"-f\"]\n"
        "HEALTHCHECK NONE\n"
    )
    onbuild, health, none = df.stages[0].instructions
    assert onbuild.trigger is not None and onbuild.trigger.keyword == "RUN"
    assert onbuild.args == "RUN echo trig"
    assert health.flag("interval") == "5s" and health.trigger is not None
    assert health.trigger.exec_form == ("curl", "-f")
    assert none.trigger is None
    assert parse_instruction("copy a b").keyword == "COPY"


@given(st.text(alphabet=st.sampled_from(list("FROM RUN COPY ENV ARG a=$\"'\\\n#[]{}-")), max_size=80))
def test_parser_raises_only_invalid_argument(text: str) -> None:
    try:
        parse_dockerfile(text)
    except InvalidArgumentError:
        pass


# -- config-only instructions ------------------------------------------------------------------

def _apply(lines: str, doc: dict[str, Any] | None = None, **scope_args: Any) -> tuple[dict[str, Any], list[str]]:
    df = parse_dockerfile("FROM a\n" + lines)
    doc = doc if doc is not None else {"config": {"Env": ["PATH=/bin"]}}
    scope = Scope("\\", scope_args.get("build_args", {}), scope_args.get("meta", {}))
    history = [apply_config(instruction, doc, scope) for instruction in df.stages[0].instructions]
    return doc, history


def test_env_uses_values_from_before_the_instruction_and_wins_over_arg() -> None:
    doc, history = _apply("ARG A=from-arg\nENV A=one B=$A\nENV C=$A\n")
    assert env_map(doc["config"]) == {"PATH": "/bin", "A": "one", "B": "from-arg", "C": "one"}
    assert history[1] == "/bin/sh -c #(nop) ENV A=one B=from-arg"


def test_arg_values_come_from_build_args_then_default_then_meta() -> None:
    doc, history = _apply("ARG X\nARG Y=dflt\nARG Z\nARG W\nLABEL x=$X y=$Y z=$Z w=$W\n",
                          build_args={"Y": "given"}, meta={"Z": "meta"})
    assert doc["config"]["Labels"] == {"x": "", "y": "given", "z": "meta", "w": ""}
    assert history[1] == "/bin/sh -c #(nop) ARG Y=dflt"  # history shows the default, not the value


def test_cmd_entrypoint_shell_and_user_workdir() -> None:
    doc, history = _apply(
        'CMD echo hi\nENTRYPOINT ["run"]\nSHELL ["/bin/bash", "-c"]\nCMD echo bash\n'
        "WORKDIR /a\nWORKDIR b/../c\nUSER 1000:1000\nSTOPSIGNAL SIGINT\nMAINTAINER me <me@x>\n",
        doc={"config": {"Cmd": ["inherited"]}},
    )
    inner = doc["config"]
    assert inner["Entrypoint"] == ["run"]
    assert inner["Cmd"] == ["/bin/bash", "-c", "echo bash"]
    assert inner["Shell"] == ["/bin/bash", "-c"]
    assert inner["WorkingDir"] == "/a/c"
    assert (inner["User"], inner["StopSignal"], doc["author"]) == ("1000:1000", "SIGINT", "me <me@x>")
    assert history[0] == '/bin/sh -c #(nop) CMD ["/bin/sh", "-c", "echo hi"]'
    assert history[3].startswith("/bin/bash -c #(nop) CMD")


def test_entrypoint_clears_an_inherited_cmd() -> None:
    doc, _ = _apply('ENTRYPOINT ["run"]\n', doc={"config": {"Cmd": ["sh"]}})
    assert doc["config"]["Cmd"] is None


def test_expose_volume_label_healthcheck_onbuild() -> None:
    doc, history = _apply(
        "ENV P=8080\nEXPOSE 80 $P/udp 9000-9002\nVOLUME /data $P\nLABEL a=1 \"b c\"=\"d e\"\n"
        "HEALTHCHECK --interval=1m30s --timeout=500ms --retries=2 CMD curl -f x\nONBUILD COPY . /src\n"
    )
    inner = doc["config"]
    assert list(inner["ExposedPorts"]) == ["80/tcp", "8080/udp", "9000/tcp", "9001/tcp", "9002/tcp"]
    assert inner["Volumes"] == {"/data": {}, "8080": {}}
    assert inner["Labels"] == {"a": "1", "b c": "d e"}
    assert inner["Healthcheck"] == {"Test": ["CMD-SHELL", "curl -f x"], "Interval": 90_000_000_000,
                                    "Timeout": 500_000_000, "Retries": 2}
    assert inner["OnBuild"] == ["COPY . /src"]
    assert history[1] == "/bin/sh -c #(nop) EXPOSE 80/tcp 8080/udp 9000/tcp 9001/tcp 9002/tcp"


@pytest.mark.parametrize(
    ("line", "message"),
    [("EXPOSE http\n", "invalid port"), ("HEALTHCHECK --interval=soon CMD x\n", "invalid duration"),
     ("HEALTHCHECK --interval=10us CMD x\n", "less than 1ms"), ("ENV A=${B\n", "missing '}'")],
)
def test_config_errors_name_the_line(line: str, message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=f"line 2: .*{message}"):
        _apply(line)
