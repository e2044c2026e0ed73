#!/usr/bin/env bash
# SMTP intake, one run, the same load for each server: Postfix's smtp-source, 20 parallel
# sessions, 20,000 messages of 2 KB, one message per session.
#   1. postwatch collect smtp (fsyncs every message before 250; the spool worker stores them)
#   2. Postfix itself accepting into its (hold) queue on another loopback port: the durable peer
#   3. Postfix's smtp-sink, which keeps nothing: the ceiling
# Prints the three rates and the ratios. Goal: collector >= 2x Postfix.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PW=${PW:-$ROOT/.venv/bin/postwatch}
MSGS=${MSGS:-20000}; SESS=${SESS:-20}; LEN=${LEN:-2048}
SRC=/usr/sbin/smtp-source; SINK=/usr/sbin/smtp-sink
for p in "$SRC" "$SINK" /usr/lib/postfix/sbin/master; do
  [ -x "$p" ] || { echo "smtp_intake: $p is missing (Debian package postfix)"; exit 2; }
done
WORK=$(mktemp -d /tmp/pw-smtp-bench.XXXXXX); chmod 755 "$WORK"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; sleep 0.5
            [ -n "${PFCONF:-}" ] && postfix -c "$PFCONF" stop >/dev/null 2>&1; rm -rf "$WORK"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.1; done; return 1; }
rate() {  # rate PORT -> messages per second
  local t0 t1
  t0=$(date +%s.%N)
  "$SRC" -s "$SESS" -l "$LEN" -m "$MSGS" -f sender@example.com -t bounces@example.com "127.0.0.1:$1" || return 1
  t1=$(date +%s.%N)
  python3 -c "print(round($MSGS/($t1-$t0)))"
}

# 1. the collector
P1=$(free_port)
mkdir -p "$WORK/pw"
( cd "$WORK/pw" && POSTWATCH_SMTP__MESSAGES_PER_MINUTE=0 exec "$PW" collect smtp --listen "127.0.0.1:$P1" 2>"$WORK/pw/log" ) &
PIDS+=($!)
wait_port "$P1" || { echo "collector did not start:"; cat "$WORK/pw/log"; exit 1; }
R1=$(rate "$P1") || R1=0
kill "${PIDS[-1]}" 2>/dev/null
ACCEPTED=$(ls "$WORK/pw/var/spool/new" 2>/dev/null | wc -l)

# 2. Postfix into its queue (held, so that delivery does not compete)
P2=$(free_port)
PFCONF="$WORK/postfix"; mkdir -p "$PFCONF" "$WORK/pfq" "$WORK/pfdata"
cp /etc/postfix/master.cf "$PFCONF/"
sed -i "s/^smtp      inet.*/127.0.0.1:$P2 inet n - n - - smtpd/" "$PFCONF/master.cf"
cat > "$PFCONF/main.cf" <<CF
compatibility_level = 3.6
queue_directory = $WORK/pfq
data_directory = $WORK/pfdata
alternate_config_directories = $PFCONF
inet_interfaces = loopback-only
inet_protocols = ipv4
myhostname = bench.localdomain
mydestination =
mynetworks = 127.0.0.0/8
smtpd_recipient_restrictions = check_recipient_access static:HOLD, permit_mynetworks, reject
maillog_file = $WORK/postfix.log
CF
R2=0
if postfix -c "$PFCONF" start >"$WORK/postfix.start" 2>&1 && wait_port "$P2"; then
  R2=$(rate "$P2") || R2=0
  postfix -c "$PFCONF" stop >/dev/null 2>&1
else
  echo "postfix peer did not start (see below); its rate is reported as 0"
  cat "$WORK/postfix.start" "$WORK/postfix.log" 2>/dev/null | tail -5
fi

# 3. smtp-sink
P3=$(free_port)
"$SINK" -u nobody "127.0.0.1:$P3" 1024 & PIDS+=($!)
wait_port "$P3"
R3=$(rate "$P3") || R3=0

echo
echo "SMTP intake: $MSGS messages of $LEN bytes, $SESS parallel sessions (smtp-source), $(nproc) cores"
printf "  %-44s %8s msg/s\n" "postwatch collect smtp (fsync before 250)" "$R1" \
  "postfix smtpd into its queue" "$R2" "smtp-sink (keeps nothing)" "$R3"
python3 - "$R1" "$R2" "$R3" <<PY
import sys
c, p, s = map(float, sys.argv[1:])
print(f"  collector / postfix = {c/p:.2f}x (goal >= 2x)" if p else "  collector / postfix = n/a")
print(f"  collector / smtp-sink = {c/s:.2f}" if s else "  collector / smtp-sink = n/a")
PY
echo "  collector accepted into the spool: $ACCEPTED files still waiting when it stopped (the rest stored)"
