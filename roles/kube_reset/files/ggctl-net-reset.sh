#!/bin/sh
# ggctl kube_reset: remove what kube-proxy (iptables, nftables or ipvs mode) and Flannel
# leave in the kernel; `kubeadm reset` leaves all of it (and says so). Only acts where
# Kubernetes left something, so a second run changes nothing. One line per removal.
set -u
for ipt in iptables ip6tables iptables-legacy ip6tables-legacy; do
    command -v "$ipt" >/dev/null 2>&1 || continue
    # Rules of kube-proxy (KUBE-*), Flannel (FLANNEL-*) or the CNI plugins (CNI-*)?
    "$ipt-save" 2>/dev/null | grep -qE '(KUBE-|FLANNEL|CNI-)' || continue
    # Every table, and its chains too: `-X` alone only deletes the filter table's.
    for table in filter nat mangle raw; do
        "$ipt" -w -t "$table" -F 2>/dev/null || continue
        "$ipt" -w -t "$table" -X 2>/dev/null || true
    done
    echo "flushed $ipt"
done
if command -v nft >/dev/null 2>&1; then
    # kube-proxy's nftables mode keeps everything in one table per family.
    for family in ip ip6; do
        if nft list table "$family" kube-proxy >/dev/null 2>&1; then
            nft delete table "$family" kube-proxy && echo "deleted nftables table $family kube-proxy"
        fi
    done
fi
if command -v ipvsadm >/dev/null 2>&1 && [ -n "$(ipvsadm -Sn 2>/dev/null)" ]; then
    ipvsadm --clear && echo "cleared the IPVS virtual servers"
fi
exit 0
