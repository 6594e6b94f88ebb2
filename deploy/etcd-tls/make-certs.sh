#!/usr/bin/env bash
# A small CA for etcd mTLS, and certificates signed by it (openssl only). Idempotent: an existing CA
# and existing certificates are kept.
#
#   make-certs.sh DIR ca
#   make-certs.sh DIR server NAME SANS      e.g. server etcd1 "IP:10.9.0.1,DNS:etcd1.example.net"
#   make-certs.sh DIR client NAME           CN=NAME; etcd maps a client certificate's CN to its user
#
# Files: DIR/ca.{crt,key}, DIR/NAME.{crt,key}. Keys are mode 0600; hand each host only its own.
set -euo pipefail
umask 077

usage() { sed -n '2,9p' "$0" >&2; exit 2; }
[ $# -ge 2 ] || usage
dir=$1 kind=$2
days=${DAYS:-825}
name_re='^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'
mkdir -p "$dir"

ca() {
  [ -s "$dir/ca.crt" ] && [ -s "$dir/ca.key" ] && return 0
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days "$days" \
    -subj "/CN=sandwich etcd CA" -keyout "$dir/ca.key" -out "$dir/ca.crt" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
  chmod 0644 "$dir/ca.crt"
  echo "made $dir/ca.crt"
}

leaf() { # name usage sans
  local name=$1 usage=$2 sans=$3
  [[ $name =~ $name_re ]] || { echo "make-certs: bad name '$name'" >&2; exit 2; }
  [ -s "$dir/$name.crt" ] && [ -s "$dir/$name.key" ] && { echo "kept $dir/$name.crt"; return 0; }
  ca
  local ext
  ext=$(mktemp)
  trap 'rm -f "$ext" "$dir/$name.csr"' RETURN
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$usage"
    [ -n "$sans" ] && echo "subjectAltName=$sans"
  } >"$ext"
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$name" \
    -keyout "$dir/$name.key" -out "$dir/$name.csr" 2>/dev/null
  openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
    -days "$days" -extfile "$ext" -out "$dir/$name.crt" 2>/dev/null
  chmod 0644 "$dir/$name.crt"
  echo "made $dir/$name.crt"
}

case $kind in
  ca) ca ;;
  server)
    [ $# -eq 4 ] || usage
    [[ $4 =~ ^((IP|DNS):[A-Za-z0-9.:-]+,?)+$ ]] || { echo "make-certs: SANS must look like IP:10.9.0.1,DNS:etcd1" >&2; exit 2; }
    # Members talk to each other with the same certificate: server and client use.
    leaf "$3" serverAuth,clientAuth "$4" ;;
  client)
    [ $# -eq 3 ] || usage
    leaf "$3" clientAuth "" ;;
  *) usage ;;
esac
