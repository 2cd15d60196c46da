"""The shell commands of README.md, read from its fenced code blocks, and the entry point each one calls.

A command is what a user types: continuation lines joined, ``# comments`` dropped, ``a && b`` split in two,
leading ``VAR=value`` assignments kept apart as its environment. ``Command.text`` is the canonical form the
tests classify it by.
"""
from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import pathlib
import re
import shlex
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
# Fence info strings that hold shell; an unlabelled fence counts as shell too (label anything else, e.g. ```text).
SHELL_LANGUAGES = {"", "bash", "sh", "shell", "console"}
SEPARATORS = {"&&", "||", ";"}
FENCE = re.compile(r"^\s*(```+|~~~+)\s*([\w+-]*)")
SAFE_WORD = re.compile(r"^[\w@%+=:,./~-]+$")
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


@dataclasses.dataclass(frozen=True)
class Command:
    text: str  # canonical: the environment, then the words, each shell-quoted only where needed
    words: tuple  # argv, without the environment
    env: tuple  # ((NAME, value), ...) from leading assignments
    line: int  # README line the command starts on


def code_blocks(path=README, *, languages=SHELL_LANGUAGES):
    """(first line number, language, [lines]) of each fenced block whose info string is in ``languages``."""
    blocks, lines, start, language = [], None, 0, None
    for number, line in enumerate(pathlib.Path(path).read_text(encoding="utf-8").splitlines(), 1):
        fence = FENCE.match(line)
        if lines is None and fence:
            lines, start, language = [], number + 1, fence.group(2).lower()
        elif lines is not None and fence and not fence.group(2):
            if language in languages:
                blocks.append((start, language, lines))
            lines = None
        elif lines is not None:
            lines.append(line)
    if lines is not None:
        raise ValueError(f"{path}: the code block opened at line {start - 1} is never closed")
    return blocks


def shell_blocks(path=README):
    """(first line number, [lines]) of each fenced shell block; a console block keeps only its ``$`` lines."""
    return [(start, [l.split("$", 1)[1] if l.lstrip().startswith("$") else "" for l in lines]
             if language == "console" else lines) for start, language, lines in code_blocks(path)]


def split_commands(source: str, line: int = 0) -> list[Command]:
    """The commands in one logical shell line (continuations already joined)."""
    lexer = shlex.shlex(source, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    commands, words = [], []
    for token in [*lexer, ";"]:
        if token not in SEPARATORS:
            words.append(token)
            continue
        env = []
        while words and ASSIGNMENT.match(words[0]):
            name, value = words.pop(0).split("=", 1)
            env.append((name, value))
        if words:
            text = " ".join([*(f"{n}={shlex.quote(v)}" for n, v in env), *map(quote, words)])
            commands.append(Command(text=text, words=tuple(words), env=tuple(env), line=line))
        words = []
    return commands


def quote(word: str) -> str:
    """A word as typed: bare when the shell reads it as itself (``~/seg`` included), else quoted."""
    return word if word == "|" or SAFE_WORD.match(word) else shlex.quote(word)


# An inline code span in the prose is a command when it starts with one of these programs.
INLINE_PROGRAMS = ("python", "python3", "pip", "apt-get", "sudo", "tensorboard", "edgetpu_compiler")


def inline_commands(path=README) -> list[Command]:
    """Commands written inline in the prose (outside code blocks), e.g. `python train.py --help`."""
    commands, fenced = [], False
    for number, line in enumerate(pathlib.Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            for span in re.findall(r"`([^`]+)`", line):
                if span.split()[0] in INLINE_PROGRAMS:
                    commands += split_commands(span, number)
    return commands


def readme_commands(path=README, *, inline=True) -> list[Command]:
    """Every shell command in the fenced blocks of ``path``, in order, then (``inline``) those in the prose."""
    commands = []
    for start, lines in shell_blocks(path):
        logical, first = "", None
        for offset, line in enumerate(lines):
            if first is None:
                first = start + offset
            if line.rstrip().endswith("\\"):
                logical += line.rstrip()[:-1] + " "
                continue
            commands += split_commands(logical + line, first)
            logical, first = "", None
        if logical.strip():
            raise ValueError(f"{path}:{first}: the block ends on a continuation line")
    return commands + (inline_commands(path) if inline else [])


def sections(path=README, *, inline=True) -> dict[str, list[Command]]:
    """The commands under each level-2 heading (``## Quick start ...`` -> its title), in the order they are written
    (the prose's inline commands at their lines)."""
    headings = [(number, line[3:].strip()) for number, line in
                enumerate(pathlib.Path(path).read_text(encoding="utf-8").splitlines(), 1) if line.startswith("## ")]
    grouped: dict[str, list[Command]] = {}
    for command in sorted(readme_commands(path, inline=inline), key=lambda c: c.line):
        title = next((t for number, t in reversed(headings) if number < command.line), "")
        grouped.setdefault(title, []).append(command)
    return grouped


# How each Python entry point is reached from a command's words: (words that name it, how to load it).
ENTRY_POINTS = {
    ("python", "train.py"): "train.py",
    ("python", "convert.py"): "convert.py",
    ("python", "evaluate.py"): "evaluate.py",
    ("python", "predict.py"): "predict.py",
    ("python", "benchmarks/run.py"): "benchmarks/run.py",
    ("python", "benchmarks/bench_models.py"): "benchmarks/bench_models.py",
    ("python", "benchmarks/bench_heads.py"): "benchmarks/bench_heads.py",
    ("python", "benchmarks/bench_smoothing.py"): "benchmarks/bench_smoothing.py",
    ("python", "benchmarks/bench_released.py"): "benchmarks/bench_released.py",
    ("python", "benchmarks/bench_mobilenetv3.py"): "benchmarks/bench_mobilenetv3.py",
    ("python", "benchmarks/bench_edge_loop.py"): "benchmarks/bench_edge_loop.py",
    ("python", "-m", "edge"): "edge.cli",
    ("python", "-m", "edge.benchmark"): "edge.benchmark",
    ("python", "-m", "kerasseg.data"): "kerasseg.data.__main__",
    ("python", "-m", "kerasseg.models"): "kerasseg.models.__main__",
    ("python", "-m", "kerasseg"): "kerasseg.__main__",
}


def entry_point(command: Command) -> tuple[str, list[str]]:
    """(entry point, its arguments) for a command that runs one of the project's Python entry points."""
    words = list(command.words)
    for prefix, name in sorted(ENTRY_POINTS.items(), key=lambda item: -len(item[0])):
        if tuple(words[:len(prefix)]) == prefix:
            return name, words[len(prefix):]
    raise ValueError(f"README line {command.line}: {command.text!r} runs no known entry point; "
                     f"known: {sorted(' '.join(p) for p in ENTRY_POINTS)}")


_MODULES: dict = {}


def load_entry_point(name: str):
    """The module of an entry point: a script (``train.py``) is imported from its file, a package by name."""
    if name not in _MODULES:
        if name.endswith(".py"):
            spec = importlib.util.spec_from_file_location("readme_" + re.sub(r"\W", "_", name[:-3]), ROOT / name)
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module  # dataclasses look their module up there
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(name)
        _MODULES[name] = module
    return _MODULES[name]


def _parse_function(name: str):
    """The entry point's argv parser: its ``parse_args``, else its ``build_parser().parse_args``, else None."""
    module = load_entry_point(name)
    if hasattr(module, "parse_args"):
        return module.parse_args
    return module.build_parser().parse_args if hasattr(module, "build_parser") else None


def parse_arguments(name: str, argv: list[str]):
    """Parse ``argv`` with the entry point's own argparse parser; a usage error raises, with argparse's message."""
    import contextlib
    import io

    parse = _parse_function(name)
    if parse is None:  # a script that parses inside main(): nothing to check without running it
        if argv:
            raise ValueError(f"{name} has no parse_args or build_parser to check {argv} with")
        return None
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            return parse(argv)
    except SystemExit as exit_:
        if exit_.code == 0:  # --help
            return None
        raise AssertionError(f"{name} rejects {argv}: exit {exit_.code}\n{err.getvalue()}") from None


def help_flags(name: str) -> set[str]:
    """The ``--flags`` an entry point's ``--help`` lists (a subcommand's too, for ``python -m kerasseg.data``)."""
    import contextlib
    import io

    parse = _parse_function(name)
    if parse is None:
        return set()
    flags = set()
    subcommands = (["--help"], ["check", "--help"], ["clip", "--help"])
    for argv in subcommands if name == "kerasseg.data.__main__" else (["--help"],):
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
            parse(argv)
        flags |= set(re.findall(r"(?<![\w-])--[a-z0-9][a-z0-9-]*", out.getvalue()))
    return flags


def file_tables(path=README) -> list[list[str]]:
    """For each table whose first header cell is ``file``: the names in backticks in its first column."""
    tables, names = [], None
    for line in pathlib.Path(path).read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")] if line.startswith("|") else None
        if cells and cells[0] == "file":
            names = []
            tables.append(names)
        elif cells and names is not None and not set(cells[0]) <= set("-: "):
            names += re.findall(r"`([^`]+)`", cells[0])
        elif not cells:
            names = None
    return tables
