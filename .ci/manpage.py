"""A man page (troff) from a program's --help and its subcommands' --help.

usage: python3 .ci/manpage.py NAME SECTION BINARY
"""
import re
import subprocess
import sys

name, section, binary = sys.argv[1:4]


def help_text(*args):
    return subprocess.run([binary, *args, "--help"], capture_output=True, text=True, check=True).stdout


def esc(line):
    line = line.replace("\\", "\\e")
    return ("\\&" + line) if line.startswith((".", "'")) else line


main = help_text()
summary = main.strip().splitlines()[0]
out = [f'.TH {name.upper()} {section} "" "emoedge" "emoedge manual"', ".SH NAME", f"{name} \\- {esc(summary)}", ".SH DESCRIPTION", ".nf"]
out += [esc(l) for l in main.splitlines()]
out.append(".fi")
# Subcommands: the lines under "Commands:" that start with two spaces and a word.
commands = re.findall(r"^  ([a-z][a-z-]*)  ", main.split("Commands:")[1], re.M) if "Commands:" in main else []
for cmd in commands:
    if cmd == "help":
        continue
    out += [f".SH {cmd.upper()}", ".nf"] + [esc(l) for l in help_text(cmd).splitlines()] + [".fi"]
print("\n".join(out))
