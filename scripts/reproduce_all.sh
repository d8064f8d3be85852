#!/usr/bin/env bash
# Run every scripted reproduction of ../shared/seeds and print one summary table.
# Usage: scripts/reproduce_all.sh [--quick] [--workers N]   (extra args go to every script)
# Exits non-zero if any expectation of any reproduction fails.
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
python="$root/.venv/bin/python"
[ -x "$python" ] || { echo "reproduce_all: run 'make setup' first" >&2; exit 2; }
logs="$(mktemp -d)"
status=0
summary=()
for seed in seed000 seed001 seed003 seed004; do
  start=$(date +%s)
  echo "== $seed" >&2
  "$python" "$root/scripts/reproduce_$seed.py" "$@" 2>&1 | tee "$logs/$seed.log"
  code=${PIPESTATUS[0]}
  [ "$code" -eq 0 ] || status=1
  line=$(grep '^RESULT' "$logs/$seed.log" | tail -n 1)
  summary+=("$(printf '%-9s %-6s %5ss  %s' "$seed" "$([ "$code" -eq 0 ] && echo ok || echo FAIL)" \
    "$(( $(date +%s) - start ))" "${line#RESULT }")")
done
echo
printf '%-9s %-6s %6s  %s\n' reproduction status time expectations
for row in "${summary[@]}"; do echo "$row"; done
echo "logs: $logs"
exit $status
