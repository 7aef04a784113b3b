#!/bin/bash
# Records this machine's metrics every 10 s from /proc: unix_ts,cpu_pct,mem_used_bytes,disk_used_bytes,net_rx_bytes,net_tx_bytes
out=$1
prev=""
echo "ts,cpu_pct,mem_used,disk_used,net_rx,net_tx" > "$out"
while true; do
  read -r _ u n s i w q sq st _ < /proc/stat
  tot=$((u+n+s+i+w+q+sq+st)); idle=$((i+w))
  if [ -n "$prev" ]; then
    set -- $prev; dt=$((tot-$1)); di=$((idle-$2))
    cpu=$(awk -v dt=$dt -v di=$di 'BEGIN{ if (dt>0) printf "%.2f", 100*(dt-di)/dt; else print 0 }')
  else cpu=0; fi
  prev="$tot $idle"
  mt=$(awk '/MemTotal/{print $2}' /proc/meminfo); ma=$(awk '/MemAvailable/{print $2}' /proc/meminfo)
  mem=$(( (mt-ma)*1024 ))
  disk=$(df -B1 --output=used /work | tail -1 | tr -d ' ')
  net=$(awk 'NR>2 && $1!="lo:" {rx+=$2; tx+=$10} END{print rx","tx}' /proc/net/dev)
  echo "$(date +%s),$cpu,$mem,$disk,$net" >> "$out"
  sleep 10
done
