#!/usr/bin/env bash
# SMTP intake, one run, the same load for each server: Postfix's smtp-source, 20 parallel
# sessions, 20,000 messages of 2 KB, one message per session.
#   1. postwatch collect smtp (fsyncs every message before 250; the spool worker stores them)
#   2. a private Postfix accepting into its queue (hold) on another loopback port: the durable
#      peer (cleanup fsyncs each queue file before smtpd answers 250, its default)
#   3. Postfix's smtp-sink, which keeps nothing: the ceiling
# Prints the three rates and the ratios, then the BENCH lines of `make bench` (a server that
# could not be measured is named with the reason). Goal: collector >= 2x Postfix. Fails only
# when the collector itself could not be measured.
# Runs as root (the Postfix peer needs it: its daemons drop to mail_owner).
# Environment: MSGS, SESS, LEN (the load); PW (the postwatch command); ONLY="1 2 3" (which to run).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PW=${PW:-$ROOT/.venv/bin/postwatch}
MSGS=${MSGS:-20000}; SESS=${SESS:-20}; LEN=${LEN:-2048}; ONLY=${ONLY:-"1 2 3"}; ROUNDS=${ROUNDS:-4}
SRC=/usr/sbin/smtp-source; SINK=/usr/sbin/smtp-sink; MASTER=/usr/lib/postfix/sbin/master
[ -x "$SRC" ] || { echo "smtp_intake: $SRC is missing (Debian package postfix); nothing can be measured"; exit 2; }
WORK=$(mktemp -d /tmp/pw-smtp-bench.XXXXXX); chmod 755 "$WORK"
PIDS=(); PFCONF=
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; sleep 0.5
            [ -n "$PFCONF" ] && postfix -c "$PFCONF" stop >/dev/null 2>&1; rm -rf "$WORK"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 150); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.1; done; return 1; }
now() { date +%s.%N; }
cpu_ticks() { awk '/^cpu /{print $2+$3+$4+$7+$8}' /proc/stat; }  # busy jiffies, all cores
round_() {  # round_ N PORT: send N messages; adds seconds and busy jiffies to $WORK/time.N / ticks.N
  local t0 t1 c0 c1
  t0=$(now); c0=$(cpu_ticks)
  "$SRC" -s "$SESS" -l "$LEN" -m "$PER" -f sender@example.com -t bounces@example.com "127.0.0.1:$2" || return 1
  t1=$(now); c1=$(cpu_ticks)
  python3 -c "print($t1-$t0)" >>"$WORK/time.$1"; echo $((c1 - c0)) >>"$WORK/ticks.$1"
}
summary() {  # summary N -> rate; "CPU per message" line to $WORK/cpu.N
  python3 - "$WORK/time.$1" "$WORK/ticks.$1" "$MSGS" "$(getconf CLK_TCK)" "$(nproc)" "$WORK/cpu.$1" <<'PY'
import sys
times = [float(x) for x in open(sys.argv[1])]; ticks = [int(x) for x in open(sys.argv[2])]
msgs, hz, cores = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
t, cpu = sum(times), sum(ticks) / hz
rounds = " ".join(str(round(msgs / len(times) / x)) for x in times)
# machine-wide busy CPU per message: everything running, the load generator included
open(sys.argv[6], "w").write(f"{cpu / msgs * 1000:.2f} ms CPU/msg, {cpu / t / cores * 100:.0f}% of the cores busy; rounds {rounds}")
print(round(msgs / t))
PY
}
wait_drained() {  # the collector's spool worker has stored everything (or 120 s passed)
  for _ in $(seq 1200); do
    [ "$(find "$WORK/pw/var/spool/new" -name '*.msg' 2>/dev/null | wc -l)" -eq 0 ] && return 0; sleep 0.1
  done; return 1
}
wants() { [[ " $ONLY " == *" $1 "* ]]; }
R1=; R2=; R3=; WHY1="not run (ONLY)"; WHY2="not run (ONLY)"; WHY3="not run (ONLY)"; DRAIN=

# 1. the collector
if wants 1; then
  P1=$(free_port)
  mkdir -p "$WORK/pw"
  ( cd "$WORK/pw" && POSTWATCH_SMTP__MESSAGES_PER_MINUTE=0 exec "$PW" collect smtp --listen "127.0.0.1:$P1" 2>"$WORK/pw/log" ) &
  PW_PID=$!; PIDS+=($PW_PID)
  if wait_port "$P1"; then UP1=1; else WHY1="did not start: $(tail -3 "$WORK/pw/log" | tr '\n' ' ')"; fi
fi

# 2. a private Postfix into its queue (held, so that delivery does not compete)
start_postfix() {
  [ "$(id -u)" -eq 0 ] || { WHY2="needs root (its daemons switch to mail_owner postfix); run the bench as root"; return 1; }
  [ -x "$MASTER" ] && command -v postfix >/dev/null || { WHY2="Postfix is not installed, or postfix is not on PATH (Debian package postfix, /usr/sbin)"; return 1; }
  id postfix >/dev/null 2>&1 && getent group postdrop >/dev/null || { WHY2="the postfix user or postdrop group is missing (reinstall the postfix package)"; return 1; }
  P2=$(free_port)
  PFCONF="$WORK/postfix"; mkdir -p "$PFCONF" "$WORK/pfq" "$WORK/pfdata"
  chown postfix "$WORK/pfdata"  # master.lock and the caches, written as mail_owner
  # the stock services, without chroot (the private queue has no chroot tree); smtpd on our port
  awk -v port="$P2" '
    /^smtp[ \t]+inet/ { print "127.0.0.1:" port " inet n - n - - smtpd"; next }
    /^[a-z0-9]/ && NF >= 8 { $5 = "n" }
    { print }' /etc/postfix/master.cf > "$PFCONF/master.cf"
  cat > "$PFCONF/main.cf" <<CF
compatibility_level = 3.6
queue_directory = $WORK/pfq
data_directory = $WORK/pfdata
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = loopback-only
inet_protocols = ipv4
myhostname = bench.localdomain
mydestination =
mynetworks = 127.0.0.0/8
smtpd_recipient_restrictions = check_recipient_access static:HOLD, permit_mynetworks, reject
maillog_file_prefixes = $WORK
maillog_file = $WORK/postfix.log
CF
  # `check` creates the queue tree; without a terminal Postfix reports only to its log
  if ! postfix -c "$PFCONF" check >"$WORK/postfix.start" 2>&1 \
     || ! postfix -c "$PFCONF" start >>"$WORK/postfix.start" 2>&1 || ! wait_port "$P2"; then
    WHY2="did not start: $(cat "$WORK/postfix.start" "$WORK/postfix.log" 2>/dev/null | grep -iE 'fatal|error|warning' | tail -3 | tr '\n' ' ')"
    return 1
  fi
}
if wants 2 && start_postfix; then UP2=1; fi

# 3. smtp-sink
if wants 3; then
  if [ ! -x "$SINK" ]; then
    WHY3="$SINK is missing (Debian package postfix)"
  else
    P3=$(free_port)
    if [ "$(id -u)" -eq 0 ]; then "$SINK" -u nobody "127.0.0.1:$P3" 1024 & else "$SINK" "127.0.0.1:$P3" 1024 & fi
    PIDS+=($!)
    if wait_port "$P3"; then UP3=1; else WHY3="did not start"; fi
  fi
fi

# the rounds
PER=$((MSGS / ROUNDS)); MSGS=$((PER * ROUNDS))
for r in $(seq "$ROUNDS"); do
  if [ -n "${UP1:-}" ] && ! round_ 1 "$P1"; then UP1=; WHY1="smtp-source failed against it: $(tail -3 "$WORK/pw/log" | tr '\n' ' ')"; fi
  if [ -n "${UP1:-}" ]; then  # the spool worker may lag behind intake: it stores the rest now
    t0=$(now); wait_drained || { UP1=; WHY1="its spool did not drain within 120 s"; }
    python3 -c "print(round($(now)-$t0, 1))" >>"$WORK/drain"
  fi
  if [ -n "${UP2:-}" ] && ! round_ 2 "$P2"; then
    UP2=; WHY2="smtp-source failed against it: $(grep -iE 'reject|fatal|error' "$WORK/postfix.log" | tail -2 | tr '\n' ' ')"
  fi
  if [ -n "${UP3:-}" ] && ! round_ 3 "$P3"; then UP3=; WHY3="smtp-source failed against it"; fi
done
[ -n "${UP1:-}" ] && R1=$(summary 1)
[ -n "${UP2:-}" ] && R2=$(summary 2)
[ -n "${UP3:-}" ] && R3=$(summary 3)

if [ -n "${PW_PID:-}" ]; then
  DRAIN="its spool drained $(paste -sd/ "$WORK/drain" 2>/dev/null) s after each round's last 250"
  kill "$PW_PID" 2>/dev/null; wait "$PW_PID" 2>/dev/null
  STORED=$(python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('select count(*) from inbound_messages').fetchone()[0])" \
           "$WORK/pw/var/postwatch.db" 2>/dev/null || echo "?")
  LEFT=$(find "$WORK/pw/var/spool/new" -name '*.msg' 2>/dev/null | wc -l)
fi
if [ -n "$PFCONF" ]; then
  HELD=$(find "$WORK/pfq/hold" -type f | wc -l)
  postfix -c "$PFCONF" stop >/dev/null 2>&1; PFCONF=
fi

echo
echo "SMTP intake: $MSGS messages of $LEN bytes to each server in $ROUNDS interleaved rounds, $SESS parallel sessions (smtp-source), $(nproc) cores"
show() {  # show LABEL RATE WHY PORT
  if [ -n "$2" ]; then printf "  %-42s %6s msg/s  (%s)\n" "$1" "$2" "$(cat "$WORK/cpu.$4" 2>/dev/null)"
  else printf "  %-42s %6s  -- %s\n" "$1" "n/a" "$3"; fi; }
show "postwatch collect smtp (fsync before 250)" "$R1" "$WHY1" 1
show "postfix smtpd into its queue (fsync)" "$R2" "$WHY2" 2
show "smtp-sink (keeps nothing)" "$R3" "$WHY3" 3
python3 - "${R1:-0}" "${R2:-0}" "${R3:-0}" <<PY
import sys
c, p, s = map(float, sys.argv[1:])
print(f"  collector / postfix   = {c/p:.2f}x (goal >= 2x)" if c and p else "  collector / postfix   = not measured (a server is missing, see above)")
print(f"  collector / smtp-sink = {c/s:.2f}" if c and s else "  collector / smtp-sink = not measured (a server is missing, see above)")
print(f"  postfix / smtp-sink   = {p/s:.2f}" if p and s else "", end="\n" if p and s else "")
PY
[ -n "${DRAIN}" ] && echo "  collector: $DRAIN; $STORED message(s) in its store, $LEFT spool file(s) left"
[ -n "${HELD:-}" ] && echo "  postfix: $HELD message(s) in its hold queue"
# the lines make bench gathers (a figure that could not be measured says why)
python3 - "$ROOT" "${R1:-0}" "${R2:-0}" "${R3:-0}" "$WHY1" "$WHY2" "$WHY3" "$MSGS" "$SESS" "$LEN" <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
from bench.benchlib import report
c, p, s = map(float, sys.argv[2:5])
why_c, why_p, why_s = sys.argv[5:8]
load = f"{int(sys.argv[8]):,} messages of {sys.argv[10]} bytes, {sys.argv[9]} sessions"
report("smtp_intake", "-", "collector ÷ Postfix", round(c / p, 2) if c and p else None, "×", "≥ 2×",
       c / p >= 2 if c and p else None, load if c and p else f"not measured: {why_p if not p else why_c}")
for name, rate, why in (("collector rate", c, why_c), ("Postfix rate", p, why_p), ("smtp-sink rate", s, why_s)):
    report("smtp_intake", "-", name, round(rate) if rate else None, "msg/s", "", None, "" if rate else why)
PY
[ -n "$R1" ]
