#!/usr/bin/env bash
# Render a captured terminal (ANSI text, e.g. `tmux capture-pane -p -e > run.ansi`) to a PNG through a small HTML
# page in headless Chromium (scripts/report_screenshot.sh).
# Usage: scripts/terminal_screenshot.sh run.ansi docs/terminal_run.png [columns] [height]
set -euo pipefail
ansi=$1
png=$2
columns=${3:-132}
height=${4:-1400}
here=$(dirname "$0")
python=${PYTHON:-$here/../.venv/bin/python}
html=$(mktemp --suffix=.html)
trap 'rm -f "$html"' EXIT
"$python" - "$ansi" "$html" "$columns" <<'PY'
import sys

from rich.console import Console
from rich.terminal_theme import MONOKAI
from rich.text import Text

source, target, columns = sys.argv[1], sys.argv[2], int(sys.argv[3])
console = Console(record=True, width=columns, file=open("/dev/null", "w"), force_terminal=True)
console.print(Text.from_ansi(open(source, encoding="utf-8").read().rstrip() + "\n"), crop=False, soft_wrap=True)
open(target, "w", encoding="utf-8").write(console.export_html(theme=MONOKAI, inline_styles=True))
PY
width=$((columns * 10 + 40))
"$here/report_screenshot.sh" "$html" "$png" "$width" "$height"
