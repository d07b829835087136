# shellcheck shell=bash disable=SC2034  # sets variables for start and stop
# Shared settings and helpers for deploy/kafka/start and deploy/kafka/stop.
# Sourced, not run.

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
state=$(realpath -m "${CTKN_KAFKA_STATE:-$here/.state}")
home=$(realpath -m "${CTKN_KAFKA_HOME:-$here/.cache}")
# The Kafka version: CTKN_KAFKA_VERSION, else pom.xml's default (4.1.x).
# Each version's jars live in their own directory of the shared cache, so
# brokers of different versions can run side by side.
default_version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$here/pom.xml")
version=${CTKN_KAFKA_VERSION:-$default_version}
if ! [[ $version =~ ^[1-9][0-9]*\.[0-9]+\.[0-9]+$ ]]; then
  echo "kafka: error: CTKN_KAFKA_VERSION must be like 4.1.2 or 3.9.1 (got $version)" >&2
  exit 1
fi
major=${version%%.*}
lib=$home/kafka-$version/lib
# Kafka 4 logs through log4j2, Kafka 3 through log4j 1 (reload4j): each reads
# its own configuration file.
if ((major >= 4)); then
  log_config=(-Dlog4j2.configurationFile="$here/log4j2.properties")
  tools_log_config=(-Dlog4j2.configurationFile="$here/tools-log4j2.properties")
else
  log_config=(-Dlog4j.configuration="file:$here/log4j.properties")
  tools_log_config=(-Dlog4j.configuration="file:$here/tools-log4j.properties")
fi
port=${CTKN_KAFKA_PORT:-9092}
cport=${CTKN_KAFKA_CONTROLLER_PORT:-$((port + 1))}
conf=$state/server.properties
pidfile=$state/kafka.pid
data=$state/data
logs=$state/logs

# A cluster (CTKN_KAFKA_NODES > 1) keeps one directory per node, node1 ...
# nodeN, each laid out like a single broker's state dir, and records its
# size, cluster id and base ports in $cluster. Node i listens on
# port + 10 (i - 1) and its controller on cport + 10 (i - 1).
cluster=$state/cluster
base_port=$port
base_cport=$cport
recorded() { sed -n "s/^$1=//p" "$cluster" 2>/dev/null || true; }
nodes=${CTKN_KAFKA_NODES:-$(recorded nodes)}
nodes=${nodes:-1}

# Point conf, pidfile, data, logs, port and cport at node $1 of the cluster.
use_node() {
  node_dir=$state/node$1
  conf=$node_dir/server.properties
  pidfile=$node_dir/kafka.pid
  data=$node_dir/data
  logs=$node_dir/logs
  port=$((base_port + 10 * ($1 - 1)))
  cport=$((base_cport + 10 * ($1 - 1)))
}

# The nodes of the cluster whose directories exist, in order.
node_ids() {
  local d
  for d in "$state"/node[0-9]*; do
    [ -d "$d" ] && echo "${d##*/node}"
  done | sort -n
}

say() { echo "kafka: $*" >&2; }
die() { say "error: $*"; exit 1; }

# Print the broker's pid if the pid file names a live process that is our
# broker (its command line has kafka.Kafka and our config); else fail.
# A zombie has an empty command line, so it counts as gone.
broker_pid() {
  local pid cmd
  pid=$(cat "$pidfile" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  cmd=$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline") || return 1
  [[ $cmd == *kafka.Kafka* && $cmd == *"$conf"* ]] || return 1
  echo "$pid"
}

# Succeed if something accepts TCP connections on 127.0.0.1:$1.
port_open() { timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

# Succeed if a Kafka broker on 127.0.0.1:$1 answers a Metadata request and
# lists at least $2 (default 1) live brokers (so it is registered and
# unfenced, not just listening). The request is Metadata v4 (api key 3; Kafka
# 4 no longer serves v0-v3, Kafka 3.9 serves v4 too), correlation id 7,
# client id "ctkn", empty topic list, no auto-creation; the reply starts with
# size, correlation id, throttle time and broker count, 4 bytes each.
kafka_ready() {
  local out b
  out=$(timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1 &&
    printf '\x00\x00\x00\x13\x00\x03\x00\x04\x00\x00\x00\x07\x00\x04ctkn\x00\x00\x00\x00\x00' >&3 &&
    head -c 16 <&3" 2>/dev/null | od -An -tu1 -v) || return 1
  read -r -a b <<<"$out"
  [[ ${#b[@]} -eq 16 && ${b[4]}${b[5]}${b[6]}${b[7]} == 0007 ]] &&
    (((b[12] << 24 | b[13] << 16 | b[14] << 8 | b[15]) >= ${2:-1}))
}

# Stop the broker, if running: SIGTERM (controlled shutdown), then SIGKILL
# after CTKN_KAFKA_STOP_TIMEOUT seconds. Removes the pid file.
stop_broker() {
  local pid i
  if pid=$(broker_pid); then
    say "stopping pid $pid"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < ${CTKN_KAFKA_STOP_TIMEOUT:-30} * 10; i++)); do
      broker_pid >/dev/null || break
      sleep 0.1
    done
    if broker_pid >/dev/null; then
      say "still running, sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      while broker_pid >/dev/null; do sleep 0.1; done
    fi
  fi
  rm -f "$pidfile"
}


# SIGKILL the broker, if running (a crash, for failure tests), and wait until
# it is gone. Removes the pid file.
kill_broker() {
  local pid
  if pid=$(broker_pid); then
    say "killing pid $pid"
    kill -KILL "$pid" 2>/dev/null || true
    while broker_pid >/dev/null; do sleep 0.05; done
  fi
  rm -f "$pidfile"
}

# The listener settings of a single broker with CTKN_KAFKA_SASL=1: clients on
# 127.0.0.1:$1 authenticate with SASL/PLAIN and StandardAuthorizer checks
# their ACLs (none but the super user's to begin with); the readiness probe
# (kafka_ready, a Metadata request naming no topic, which needs no ACL) gets
# a PLAINTEXT listener on $2; the controller listener ($3) authenticates the
# broker as the super user. Test users only: admin (super user, for creating
# topics and ACLs) and ctkn (what the tests grant). Passwords are the user
# names with "-secret": this broker is for tests, on loopback.
sasl_conf() {
  local users='user_admin="admin-secret" user_ctkn="ctkn-secret"'
  local jaas="org.apache.kafka.common.security.plain.PlainLoginModule required username=\"admin\" password=\"admin-secret\" $users;"
  cat <<CONF
listeners=PLAINTEXT://127.0.0.1:$2,SASL_PLAINTEXT://127.0.0.1:$1,CONTROLLER://127.0.0.1:$3
advertised.listeners=PLAINTEXT://127.0.0.1:$2,SASL_PLAINTEXT://127.0.0.1:$1
inter.broker.listener.name=SASL_PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:SASL_PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,PLAINTEXT:PLAINTEXT
sasl.enabled.mechanisms=PLAIN
sasl.mechanism.inter.broker.protocol=PLAIN
sasl.mechanism.controller.protocol=PLAIN
listener.name.sasl_plaintext.plain.sasl.jaas.config=$jaas
listener.name.controller.plain.sasl.jaas.config=$jaas
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:admin
allow.everyone.if.no.acl.found=false
CONF
}
